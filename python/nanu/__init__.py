"""nanu: an embedded API-key vault.

A ``Vault`` keeps API keys, their policies and their usage in one encrypted file, and enforces
keys, scopes, IP allowlists, expiry, rate limits, token limits and money budgets inside this
process: ``verify`` on every request (about a microsecond), ``charge`` with what the request
really used.

    import nanu

    with nanu.Vault.create("keys.vault", passphrase="correct horse") as vault:
        minted = vault.mint("acme", limits=["cost=$10/month", "requests=100/min"])
        verdict = vault.verify(minted.secret, model="gpt-4o")
        if verdict.allowed:
            vault.charge(verdict.key_id, model="gpt-4o", input_tokens=1200,
                         output_tokens=300, cost=4_500, request_id="req-1")

Denials are verdicts with a stable ``code``; failures raise ``nanu.Error`` subclasses with a
stable ``code``. Money is integer micro-units of the vault's currency.
"""

from __future__ import annotations

from . import _native
from ._errors import (
    Closed,
    Conflict,
    Corrupt,
    Error,
    InvalidArgument,
    Locked,
    NotAVault,
    NotFound,
    Storage,
    WrongPassphrase,
)
from ._native import ChargeOutcome, LimitStatus, Remaining, Verdict
from ._types import (
    AuditCheck,
    AuditRecord,
    Event,
    KdfParams,
    KeyInfo,
    KeyPage,
    Limit,
    LimitLike,
    Minted,
    OwnerInfo,
    Price,
    PriceImport,
    Stats,
    UsageRecord,
    UsageRow,
)
from ._vault import UNSET, Concurrency, Durability, Span, Time, Vault

__version__: str = _native.__version__

SECRET_REGEX: str = _native.SECRET_REGEX
"""A regular expression matching nanu secrets, for secret scanners."""

MAX_SECRET_LEN: int = _native.MAX_SECRET_LEN
"""The longest text a secret can be; longer input is refused as malformed at once."""

CODES: tuple[str, ...] = (
    "valid",
    "malformed",
    "not_found",
    "revoked",
    "disabled",
    "expired",
    "env_mismatch",
    "ip_denied",
    "scope_denied",
    "model_denied",
    "model_unpriced",
    "usage_exceeded",
    "budget_exceeded",
    "rate_limited",
)
"""Every verdict code, in the order of their numbers in the C ABI."""

ERROR_CODES: tuple[str, ...] = (
    "invalid_argument",
    "not_found",
    "wrong_passphrase",
    "locked",
    "not_a_vault",
    "corrupt",
    "storage",
    "conflict",
    "closed",
)
"""Every error code."""


def parse_money(text: str) -> int:
    """Micro-units of a decimal amount of money: ``parse_money("$1.50") == 1_500_000``."""
    return _native.parse_money(text)


def format_money(micros: int) -> str:
    """A decimal amount of micro-units: ``format_money(1_500_000) == "1.50"``."""
    return _native.format_money(micros)


__all__ = [
    "CODES",
    "ERROR_CODES",
    "MAX_SECRET_LEN",
    "SECRET_REGEX",
    "UNSET",
    "AuditCheck",
    "AuditRecord",
    "ChargeOutcome",
    "Closed",
    "Concurrency",
    "Conflict",
    "Corrupt",
    "Durability",
    "Error",
    "Event",
    "InvalidArgument",
    "KdfParams",
    "KeyInfo",
    "KeyPage",
    "Limit",
    "LimitLike",
    "LimitStatus",
    "Locked",
    "Minted",
    "NotAVault",
    "NotFound",
    "OwnerInfo",
    "Price",
    "PriceImport",
    "Remaining",
    "Span",
    "Stats",
    "Storage",
    "Time",
    "UsageRecord",
    "UsageRow",
    "Vault",
    "Verdict",
    "WrongPassphrase",
    "format_money",
    "parse_money",
]

"""The value types of nanu: what goes in (limits, prices, KDF parameters) and what comes back
(keys, remaining figures, usage rows, events, audit records).

Every result is a frozen dataclass built from the JSON form the core writes; times are aware
UTC datetimes and money is integer micro-units. ``Verdict``, ``ChargeOutcome``, ``Remaining``
and ``LimitStatus``, the results of the calls on every request's path, are native classes
(``nanu._native``) whose attributes are built when read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from . import _native
from ._errors import InvalidArgument
from ._native import LimitStatus, Remaining

U64_MAX = 2**64 - 1

_RFC3339 = re.compile(
    r"(-?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)"
)


def _time(text: str | None) -> datetime | None:
    """An aware UTC datetime of the RFC 3339 text the core writes (microsecond precision)."""
    if text is None:
        return None
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidArgument(f"cannot read the time {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    at = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micros,
        tzinfo=timezone.utc,
    )
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        at -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return at


def _check_u64(name: str, value: object) -> int:
    """An integer from 0 to 2**64 - 1; bools, floats and anything else are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= U64_MAX:
        raise InvalidArgument(f"{name} must be an integer from 0 to {U64_MAX}, got {value}")
    return value


def _check_opt_str(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a str or None, got {type(value).__name__}")


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters of a vault's passphrase."""

    m_cost_kib: int
    t_cost: int
    p_cost: int

    DEFAULT: ClassVar[KdfParams]
    """64 MiB, 3 passes, 1 lane (about 0.2 s)."""

    INSECURE_FOR_TESTS: ClassVar[KdfParams]
    """The cheapest parameters Argon2 accepts: for tests only."""

    def __post_init__(self) -> None:
        for name in ("m_cost_kib", "t_cost", "p_cost"):
            value = _check_u64(f"kdf.{name}", getattr(self, name))
            if value > 2**32 - 1:
                raise InvalidArgument(f"kdf.{name} {value} is too large")


KdfParams.DEFAULT = KdfParams(64 * 1024, 3, 1)
KdfParams.INSECURE_FOR_TESTS = KdfParams(8, 1, 1)


@dataclass(frozen=True)
class Limit:
    """At most ``amount`` of ``unit`` per ``window``.

    ``unit``: ``requests``, ``tokens``, ``input_tokens``, ``output_tokens`` or ``cost``
    (integer micro-units). ``window``: ``lifetime``, ``rolling`` (a token bucket refilled at
    ``amount`` per ``every``, e.g. ``"1m"``), or a calendar ``hour``, ``day``, ``week``,
    ``month`` or ``year`` in the IANA zone ``tz`` (UTC by default), a month starting on day
    ``anchor``. ``alert_at``: percents at which a threshold event fires.

    Wherever a limit is taken, its text form works too: ``"cost=$10/month"``,
    ``"requests=100/min"``, ``"tokens=1M/day@Europe/Berlin"``.
    """

    unit: str
    amount: int
    window: str = "lifetime"
    tz: str | None = None
    anchor: int | None = None
    every: str | None = None
    alert_at: tuple[int, ...] = (50, 80, 100)

    UNITS: ClassVar[tuple[str, ...]] = (
        "requests", "tokens", "input_tokens", "output_tokens", "cost",
    )
    """Every unit."""

    def __post_init__(self) -> None:
        if self.unit not in Limit.UNITS:
            raise InvalidArgument(
                f"unknown limit unit {self.unit!r} (requests, tokens, input_tokens, "
                "output_tokens or cost)"
            )
        _check_u64("limit amount", self.amount)
        if not isinstance(self.window, str):
            raise InvalidArgument(
                f"limit window must be a str, got {type(self.window).__name__}"
            )
        _check_opt_str("limit tz", self.tz)
        _check_opt_str("limit every", self.every)
        if self.anchor is not None:
            _check_u64("limit anchor", self.anchor)
        if isinstance(self.alert_at, (str, bytes)) or not isinstance(self.alert_at, Iterable):
            raise InvalidArgument("limit alert_at must be a sequence of percents")
        percents = tuple(self.alert_at)
        for percent in percents:
            _check_u64("limit alert_at percent", percent)
        object.__setattr__(self, "alert_at", percents)

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Reads the text form: ``Limit.parse("tokens=1M/day@Europe/Berlin")``."""
        return cls._from(_native.parse_limit(text))

    def __str__(self) -> str:
        return _native.format_limit(self._json())

    def _json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": self.unit, "amount": self.amount, "window": self.window}
        if self.tz is not None:
            out["tz"] = self.tz
        if self.anchor is not None:
            out["anchor"] = self.anchor
        if self.every is not None:
            out["every"] = self.every
        out["alert_at"] = list(self.alert_at)
        return out

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Limit:
        return cls(
            unit=d["unit"],
            amount=d["amount"],
            window=d["window"],
            tz=d.get("tz"),
            anchor=d.get("anchor"),
            every=d.get("every"),
            alert_at=tuple(d.get("alert_at", (50, 80, 100))),
        )


LimitLike = Limit | str | Mapping[str, Any]
"""A limit as a ``Limit``, its text form, or its JSON object form."""


def _limit_json(limit: object) -> Any:
    """The JSON form of a limit argument, its fields checked."""
    if isinstance(limit, str):
        return limit
    if isinstance(limit, Limit):
        return limit._json()
    if isinstance(limit, Mapping):
        try:
            return Limit(**limit)._json()
        except TypeError as err:
            raise InvalidArgument(f"limit {dict(limit)!r}: {err}") from None
    raise InvalidArgument(
        f"a limit must be a Limit, a str or a dict, got {type(limit).__name__}"
    )


def _limits_json(limits: object) -> list[Any]:
    if isinstance(limits, (str, bytes, Mapping, Limit)) or not isinstance(limits, Iterable):
        raise InvalidArgument("limits must be a list of limits")
    return [_limit_json(limit) for limit in limits]


@dataclass(frozen=True)
class Price:
    """A model's price in integer micro-units: per million input and output tokens, and per
    request."""

    input_per_mtok: int = 0
    output_per_mtok: int = 0
    per_request: int = 0

    def __post_init__(self) -> None:
        _check_u64("input_per_mtok", self.input_per_mtok)
        _check_u64("output_per_mtok", self.output_per_mtok)
        _check_u64("per_request", self.per_request)

    def _json(self) -> dict[str, int]:
        return {
            "input_per_mtok": self.input_per_mtok,
            "output_per_mtok": self.output_per_mtok,
            "per_request": self.per_request,
        }

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Price:
        return cls(d["input_per_mtok"], d["output_per_mtok"], d["per_request"])


@dataclass(frozen=True)
class Minted:
    """A freshly minted or rotated key: the only time its secret is seen.

    ``secret`` is the text to hand to the user; it is never stored, and ``repr`` shows only its
    public prefix and environment.
    """

    key_id: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        public = "_".join(self.secret.split("_", 2)[:2])
        return f"Minted(key_id={self.key_id!r}, secret='{public}_…')"


@dataclass(frozen=True)
class KeyInfo:
    """A key as stored, without its secret."""

    key_id: str
    owner: str
    name: str
    env: str
    status: str
    """``active``, ``disabled``, ``revoked`` or ``expired`` (derived at the time of the call)."""
    created_at: datetime
    updated_at: datetime
    rotated_at: datetime
    grace_until: datetime | None
    expires_at: datetime | None
    scopes: tuple[str, ...]
    models: tuple[str, ...] | None
    aliases: dict[str, str]
    ips: tuple[str, ...] | None
    limits: tuple[Limit, ...]
    rotate_every: str | None
    metadata: dict[str, Any]

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> KeyInfo:
        return cls(
            key_id=d["key_id"],
            owner=d["owner"],
            name=d["name"],
            env=d["env"],
            status=d["status"],
            created_at=_time(d["created_at"]),  # type: ignore[arg-type]
            updated_at=_time(d["updated_at"]),  # type: ignore[arg-type]
            rotated_at=_time(d["rotated_at"]),  # type: ignore[arg-type]
            grace_until=_time(d.get("grace_until")),
            expires_at=_time(d.get("expires_at")),
            scopes=tuple(d["scopes"]),
            models=None if d.get("models") is None else tuple(d["models"]),
            aliases=dict(d["aliases"]),
            ips=None if d.get("ips") is None else tuple(d["ips"]),
            limits=tuple(Limit._from(limit) for limit in d["limits"]),
            rotate_every=d.get("rotate_every"),
            metadata=dict(d["metadata"]),
        )


@dataclass(frozen=True)
class KeyPage:
    """One page of ``Vault.list``, in key id order; pass ``next`` as ``after`` for the next
    page (``None`` on the last page)."""

    keys: tuple[KeyInfo, ...]
    next: str | None

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> KeyPage:
        return cls(tuple(KeyInfo._from(k) for k in d["keys"]), d.get("next"))


@dataclass(frozen=True)
class OwnerInfo:
    """An owner, its limits and their state."""

    owner: str
    limits: tuple[Limit, ...]
    keys: int
    remaining: Remaining

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> OwnerInfo:
        return cls(
            owner=d["owner"],
            limits=tuple(Limit._from(limit) for limit in d["limits"]),
            keys=d["keys"],
            remaining=Remaining._from_json(d["remaining"]),
        )


@dataclass(frozen=True)
class UsageRow:
    """One row of a usage report. Sums are exact integers."""

    bucket: datetime | None
    """The bucket's start, when bucketed."""
    group: dict[str, str]
    """Group values by dimension name (``key``, ``owner``, ``env``, ``model``, ...)."""
    requests: int
    """Charges."""
    denied: int
    """Denied verifies of known keys."""
    input_tokens: int
    output_tokens: int
    tokens: int
    cost: int

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> UsageRow:
        return cls(
            bucket=_time(d.get("bucket")),
            group=dict(d["group"]),
            requests=d["requests"],
            denied=d["denied"],
            input_tokens=d["input_tokens"],
            output_tokens=d["output_tokens"],
            tokens=d["tokens"],
            cost=d["cost"],
        )


@dataclass(frozen=True)
class UsageRecord:
    """One record of the usage log: a charge, or a denied verify of a known key."""

    at: datetime
    key_id: str
    owner: str
    env: str
    model: str | None
    endpoint: str | None
    input_tokens: int
    output_tokens: int
    cost: int
    request_id: str | None
    outcome: str
    """``charged``, or the code of the denied verify."""

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> UsageRecord:
        return cls(
            at=_time(d["at"]),  # type: ignore[arg-type]
            key_id=d["key_id"],
            owner=d["owner"],
            env=d["env"],
            model=d.get("model"),
            endpoint=d.get("endpoint"),
            input_tokens=d["input_tokens"],
            output_tokens=d["output_tokens"],
            cost=d["cost"],
            request_id=d.get("request_id"),
            outcome=d["outcome"],
        )


@dataclass(frozen=True)
class Event:
    """An event: ``threshold``, ``exhausted``, ``expiring``, ``expired``, ``rotated``,
    ``revoked`` or ``unpriced``, ordered by ``seq``."""

    seq: int
    at: datetime
    kind: str
    key_id: str | None
    owner: str | None
    percent: int | None
    """For threshold events, the percent crossed."""
    limit: LimitStatus | None
    """For limit events, the limit's state right after the crossing."""
    model: str | None
    """For unpriced events, the model."""

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Event:
        limit = d.get("limit")
        return cls(
            seq=d["seq"],
            at=_time(d["at"]),  # type: ignore[arg-type]
            kind=d["kind"],
            key_id=d.get("key_id"),
            owner=d.get("owner"),
            percent=d.get("percent"),
            limit=None if limit is None else LimitStatus._from_json(limit),
            model=d.get("model"),
        )


@dataclass(frozen=True)
class AuditRecord:
    """One administrative change, hash-chained to the one before."""

    seq: int
    at: datetime
    action: str
    target: str
    actor: str | None
    detail: Any
    hash: str

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> AuditRecord:
        return cls(
            seq=d["seq"],
            at=_time(d["at"]),  # type: ignore[arg-type]
            action=d["action"],
            target=d["target"],
            actor=d.get("actor"),
            detail=d.get("detail"),
            hash=d["hash"],
        )


@dataclass(frozen=True)
class AuditCheck:
    """The result of ``Vault.verify_audit``: whether the chain is intact and, if not, the
    first record found removed, altered or unreadable."""

    records: int
    ok: bool
    first_bad: tuple[int, str] | None

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> AuditCheck:
        bad = d.get("first_bad")
        return cls(d["records"], d["ok"], None if bad is None else (bad[0], bad[1]))


@dataclass(frozen=True)
class Stats:
    """Counts of keys, owners, holds and refused garbage."""

    keys: int
    owners: int
    malformed: int
    not_found: int
    holds: int
    corrupt_keys: int

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Stats:
        return cls(
            d["keys"], d["owners"], d["malformed"], d["not_found"], d["holds"],
            d["corrupt_keys"],
        )


@dataclass(frozen=True)
class PriceImport:
    """What an import of LiteLLM's prices did: models priced, entries skipped (model,
    reason) and prices rounded up to a whole micro-unit (model, field)."""

    imported: int
    skipped: tuple[tuple[str, str], ...]
    rounded: tuple[tuple[str, str], ...]

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> PriceImport:
        return cls(
            d["imported"],
            tuple((a, b) for a, b in d["skipped"]),
            tuple((a, b) for a, b in d["rounded"]),
        )

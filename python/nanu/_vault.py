"""The vault: ``nanu.Vault``."""

from __future__ import annotations

import atexit
import builtins
import enum
import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Literal

from . import _native
from ._errors import InvalidArgument
from ._native import Remaining
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
    _limits_json,
)

Durability = Literal["durable"] | Literal["process"] | Literal["relaxed"]
"""What a crash may lose: ``durable`` (nothing that returned), ``process`` (survives the
process being killed, not power loss), ``relaxed`` (at most one flush interval)."""

Concurrency = Literal["exclusive"] | Literal["shared"]
"""How processes share a vault file: ``exclusive`` (one process; another gets ``Locked``) or
``shared`` (any number of processes on one machine, such as the workers of a web server)."""

Time = datetime | int
"""A time: a timezone-aware ``datetime``, or an ``int`` of epoch milliseconds."""

Span = timedelta | int
"""A duration: a ``timedelta``, or an ``int`` of milliseconds."""


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""The default of ``Vault.update``'s fields: leave the field as it is."""

_open_vaults: weakref.WeakSet[Vault] = weakref.WeakSet()


@atexit.register
def _close_open_vaults() -> None:
    # Closing flushes; it must happen before the interpreter tears down, while the commit
    # thread can still take the GIL to deliver events to subscribers.
    for vault in builtins.list(_open_vaults):
        try:
            vault.close()
        except Exception as err:  # noqa: BLE001 - an exit hook reports and goes on
            import warnings

            warnings.warn(f"nanu: closing {vault.path!s} at exit failed: {err}", stacklevel=1)


def _strings(name: str, value: object) -> builtins.list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidArgument(f"{name} must be a list of str, got {type(value).__name__}")
    items = builtins.list(value)
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"{name} must be a list of str, got a {type(item).__name__}")
    return items


def _mapping(name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{name} must be a dict, got {type(value).__name__}")
    return dict(value)


def _span_text(name: str, value: object) -> str:
    """A span of the JSON forms (``ttl``, ``rotate_every``): text such as ``"30 days"``, or a
    ``timedelta``."""
    if isinstance(value, str):
        return value
    if isinstance(value, timedelta):
        return f"{value // timedelta(microseconds=1)}us"
    raise InvalidArgument(f"{name} must be a str (e.g. '30 days') or a timedelta")


def _spec(
    owner: str,
    *,
    name: str | None = None,
    env: str | None = None,
    scopes: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
    aliases: Mapping[str, str] | None = None,
    ips: Iterable[str] | None = None,
    expires_at: Time | None = None,
    ttl: str | timedelta | None = None,
    limits: Iterable[LimitLike] | None = None,
    rotate_every: str | timedelta | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON form of a key spec."""
    spec: dict[str, Any] = {"owner": owner}
    if name is not None:
        spec["name"] = name
    if env is not None:
        spec["env"] = env
    if scopes is not None:
        spec["scopes"] = _strings("scopes", scopes)
    if models is not None:
        spec["models"] = _strings("models", models)
    if aliases is not None:
        spec["aliases"] = _mapping("aliases", aliases)
    if ips is not None:
        spec["ips"] = _strings("ips", ips)
    if expires_at is not None:
        spec["expires_at"] = _native.timestamp_text(expires_at, "expires_at")
    if ttl is not None:
        spec["ttl"] = _span_text("ttl", ttl)
    if limits is not None:
        spec["limits"] = _limits_json(limits)
    if rotate_every is not None:
        spec["rotate_every"] = _span_text("rotate_every", rotate_every)
    if metadata is not None:
        spec["metadata"] = _mapping("metadata", metadata)
    return spec


def _query(
    from_: Time | None,
    to: Time | None,
    key_id: str | None,
    owner: str | None,
    env: str | None,
    model: str | None,
    endpoint: str | None,
    group_by: Iterable[str],
    bucket: str | None,
    tz: str | None,
) -> dict[str, Any]:
    """The JSON form of a usage query."""
    query: dict[str, Any] = {"group_by": _strings("group_by", group_by)}
    if from_ is not None:
        query["from"] = _native.timestamp_text(from_, "from_")
    if to is not None:
        query["to"] = _native.timestamp_text(to, "to")
    for field, value in (
        ("key_id", key_id),
        ("owner", owner),
        ("env", env),
        ("model", model),
        ("endpoint", endpoint),
        ("bucket", bucket),
        ("tz", tz),
    ):
        if value is not None:
            query[field] = value
    return query


class Vault(_native.Vault):
    """An open vault file: API keys, their limits and their usage.

    Open one with ``Vault.open(path, passphrase=...)`` or make one with
    ``Vault.create(path, passphrase=...)``; use it as a context manager or call ``close()``.
    Vaults still open when the interpreter exits are closed then. A vault is safe to share
    between threads. Its file is held by one process at a time (``nanu.Locked`` otherwise).

    Times (every ``at=``, ``expires_at``, ``from_``, ``to``) are timezone-aware ``datetime``
    objects or ``int`` epoch milliseconds; a naive ``datetime`` raises ``InvalidArgument``.
    Times given back are aware UTC datetimes. Integers (tokens, money in micro-units, ids)
    are checked, never truncated: a negative or too large number, a bool or a float raises
    ``InvalidArgument``. ``at=`` on any call replaces the vault's clock for that call
    (replays and tests); ``actor=`` on administrative calls is recorded in the audit trail.

    ``verify``, ``charge``, ``release``, ``flush`` and ``close`` are native methods (see
    their own documentation); everything else is defined here.
    """

    __slots__ = ("__weakref__",)

    def __new__(cls, *args: object, **kwargs: object) -> Vault:
        raise TypeError(
            "use nanu.Vault.open(path, ...) to open a vault or nanu.Vault.create(path, ...) "
            "to make one"
        )

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        key: bytes | str | None = None,
        durability: Durability = "durable",
        concurrency: Concurrency = "exclusive",
        kdf: KdfParams | Mapping[str, int] | None = None,
        prefix: str = "nanu",
        currency: str = "usd",
        flush_interval_ms: Span = 100,
        hold_timeout_ms: Span = 600_000,
        expiring_lead_ms: Span = 7 * 86_400_000,
        idempotency_window_ms: Span = 7 * 86_400_000,
        lease_timeout_ms: Span = 10_000,
    ) -> Vault:
        """Creates a new vault file at ``path`` (which must not exist) and opens it.

        Unlock it with a ``passphrase`` (stretched with Argon2id, parameters ``kdf``, by
        default ``KdfParams.DEFAULT``) or a raw 32-byte ``key`` (bytes, or 64 hex digits).
        ``prefix`` starts every secret (``nanu_live_...``); ``currency`` names the unit of
        money amounts. ``flush_interval_ms``: how often counters and the ``process`` and
        ``relaxed`` levels commit; ``hold_timeout_ms``: how long an unsettled hold lives;
        ``expiring_lead_ms``: how early the ``expiring`` event fires;
        ``idempotency_window_ms``: how long a charge's request id is remembered.

        ``concurrency="shared"`` lets any number of processes on this machine open the file at
        once (the workers of uvicorn, gunicorn or a process pool): each process leases slices
        of every limit from the shared counters and admits from them in memory, so limits hold
        exactly across processes, and a mint, revoke, rotate or update in one process is seen
        by the next verify in every other. Only ``durability="durable"`` is accepted with it,
        and a hold is settled only by a charge made in the process that placed it.
        ``lease_timeout_ms``: how long the slices of a process that stopped without closing
        the vault (killed, crashed) stay reserved before the other processes take them back.
        With the default ``"exclusive"``, another process that opens the file gets ``Locked``.

        The key derivation runs without the GIL.
        """
        vault = _native.Vault.__new__(
            cls,
            os.fspath(path),
            create=True,
            passphrase=passphrase,
            key=key,
            durability=durability,
            concurrency=concurrency,
            kdf=_kdf(kdf),
            prefix=prefix,
            currency=currency,
            flush_interval_ms=flush_interval_ms,
            hold_timeout_ms=hold_timeout_ms,
            expiring_lead_ms=expiring_lead_ms,
            idempotency_window_ms=idempotency_window_ms,
            lease_timeout_ms=lease_timeout_ms,
        )
        _open_vaults.add(vault)
        return vault

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        key: bytes | str | None = None,
        durability: Durability = "durable",
        concurrency: Concurrency = "exclusive",
        flush_interval_ms: Span = 100,
        hold_timeout_ms: Span = 600_000,
        expiring_lead_ms: Span = 7 * 86_400_000,
        idempotency_window_ms: Span = 7 * 86_400_000,
        lease_timeout_ms: Span = 10_000,
    ) -> Vault:
        """Opens an existing vault file; the arguments are those of ``create``.

        Raises ``WrongPassphrase``, ``NotAVault``, ``Locked`` (another process has the file
        open exclusively, or in the other ``concurrency`` mode) or ``Storage``. The key
        derivation runs without the GIL.
        """
        vault = _native.Vault.__new__(
            cls,
            os.fspath(path),
            create=False,
            passphrase=passphrase,
            key=key,
            durability=durability,
            concurrency=concurrency,
            flush_interval_ms=flush_interval_ms,
            hold_timeout_ms=hold_timeout_ms,
            expiring_lead_ms=expiring_lead_ms,
            idempotency_window_ms=idempotency_window_ms,
            lease_timeout_ms=lease_timeout_ms,
        )
        _open_vaults.add(vault)
        return vault

    def __enter__(self) -> Vault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.durability
        return f"<nanu.Vault {str(self.path)!r} ({state})>"

    # ---- keys ---------------------------------------------------------------------------

    def mint(
        self,
        owner: str,
        *,
        name: str | None = None,
        env: str | None = None,
        scopes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        aliases: Mapping[str, str] | None = None,
        ips: Iterable[str] | None = None,
        expires_at: Time | None = None,
        ttl: str | timedelta | None = None,
        limits: Iterable[LimitLike] | None = None,
        rotate_every: str | timedelta | None = None,
        metadata: Mapping[str, Any] | None = None,
        at: Time | None = None,
        actor: str | None = None,
    ) -> Minted:
        """Mints a key for ``owner``; its secret is returned once and never stored.

        ``env``: ``live`` (default), ``test`` or another short lowercase word. ``scopes``: the
        scopes a verify may ask for. ``models``: allowed models (``openai/*`` allows a whole
        family; ``None`` allows all). ``aliases``: model names resolved before the model
        check. ``ips``: allowed client networks (CIDR or addresses; ``None`` allows all).
        ``expires_at`` or ``ttl`` (``"30 days"``, a ``timedelta``): when it expires.
        ``limits``: ``Limit`` objects, text (``"cost=$10/month"``) or JSON objects.
        ``rotate_every``: how old a secret ``rotate_due`` rotates. ``metadata``: a JSON
        object stored with the key.
        """
        spec = _spec(
            owner,
            name=name,
            env=env,
            scopes=scopes,
            models=models,
            aliases=aliases,
            ips=ips,
            expires_at=expires_at,
            ttl=ttl,
            limits=limits,
            rotate_every=rotate_every,
            metadata=metadata,
        )
        ((key_id, secret),) = self._mint_many([spec], at, actor)
        return Minted(key_id, secret)

    def mint_many(
        self,
        specs: Iterable[Mapping[str, Any]],
        *,
        at: Time | None = None,
        actor: str | None = None,
    ) -> builtins.list[Minted]:
        """Mints many keys in one commit. Each spec is a mapping of ``mint``'s arguments
        (``{"owner": "acme", "limits": ["requests=100/min"]}``). Every spec is checked first:
        one bad spec mints nothing."""
        prepared = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, Mapping):
                raise InvalidArgument(f"key spec {i} must be a dict, got {type(spec).__name__}")
            try:
                prepared.append(_spec(**spec))
            except TypeError as err:
                raise InvalidArgument(f"key spec {i}: {err}") from None
        return [Minted(k, s) for k, s in self._mint_many(prepared, at, actor)]

    def get(self, key_id: str) -> KeyInfo:
        """A key's stored details, never its secret. Raises ``NotFound``."""
        return KeyInfo._from(self._get(key_id))

    def list(
        self,
        *,
        owner: str | None = None,
        env: str | None = None,
        status: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> KeyPage:
        """One page of keys in key id order, filtered by owner, env and status (``active``,
        ``disabled``, ``revoked``, ``expired``); ``limit`` from 1 to 10,000."""
        selection: dict[str, Any] = {"limit": limit}
        for field, value in (("owner", owner), ("env", env), ("status", status), ("after", after)):
            if value is not None:
                selection[field] = value
        return KeyPage._from(self._list(selection))

    def update(
        self,
        key_id: str,
        *,
        name: str | _Unset = UNSET,
        scopes: Iterable[str] | _Unset = UNSET,
        models: Iterable[str] | None | _Unset = UNSET,
        aliases: Mapping[str, str] | _Unset = UNSET,
        ips: Iterable[str] | None | _Unset = UNSET,
        expires_at: Time | None | _Unset = UNSET,
        disabled: bool | _Unset = UNSET,
        metadata: Mapping[str, Any] | _Unset = UNSET,
        limits: Iterable[LimitLike] | _Unset = UNSET,
        rotate_every: str | timedelta | None | _Unset = UNSET,
        at: Time | None = None,
        actor: str | None = None,
    ) -> KeyInfo:
        """Changes a key; fields left out stay as they are. ``None`` removes ``models``,
        ``ips`` (allowing all), ``expires_at`` and ``rotate_every``. ``disabled=True``
        refuses the key until ``disabled=False``. New ``limits`` keep the usage already
        counted by limits whose unit and window are unchanged. Returns the key as changed."""
        patch: dict[str, Any] = {}
        if name is not UNSET:
            patch["name"] = name
        if scopes is not UNSET:
            patch["scopes"] = _strings("scopes", scopes)
        if models is not UNSET:
            patch["models"] = None if models is None else _strings("models", models)
        if aliases is not UNSET:
            patch["aliases"] = _mapping("aliases", aliases)
        if ips is not UNSET:
            patch["ips"] = None if ips is None else _strings("ips", ips)
        if expires_at is not UNSET:
            patch["expires_at"] = (
                None if expires_at is None else _native.timestamp_text(expires_at, "expires_at")
            )
        if disabled is not UNSET:
            if not isinstance(disabled, bool):
                raise InvalidArgument(f"disabled must be a bool, got {type(disabled).__name__}")
            patch["disabled"] = disabled
        if metadata is not UNSET:
            patch["metadata"] = _mapping("metadata", metadata)
        if limits is not UNSET:
            patch["limits"] = _limits_json(limits)
        if rotate_every is not UNSET:
            patch["rotate_every"] = (
                None if rotate_every is None else _span_text("rotate_every", rotate_every)
            )
        return KeyInfo._from(self._update(key_id, patch, at, actor))

    def revoke(self, key_id: str, *, at: Time | None = None, actor: str | None = None) -> None:
        """Revokes a key at once; its next verify answers ``revoked``."""
        self._revoke(key_id, at, actor)

    def revoke_owner(
        self, owner: str, *, at: Time | None = None, actor: str | None = None
    ) -> int:
        """Revokes every key of an owner; returns how many were not revoked before."""
        return self._revoke_owner(owner, at, actor)

    def rotate(
        self,
        key_id: str,
        grace: Span = 0,
        *,
        at: Time | None = None,
        actor: str | None = None,
    ) -> Minted:
        """Issues a new secret for the same key id, limits and usage. The previous secret keeps
        working for ``grace`` (a ``timedelta`` or milliseconds); a later rotation never
        extends it, and a grace of 0 ends it at once."""
        key_id, secret = self._rotate(key_id, grace, at, actor)
        return Minted(key_id, secret)

    def rotate_due(
        self, *, grace: Span = 0, at: Time | None = None, actor: str | None = None
    ) -> builtins.list[Minted]:
        """Rotates every active key whose ``rotate_every`` has passed; returns the new
        secrets."""
        return [Minted(k, s) for k, s in self._rotate_due(grace, at, actor)]

    def tick(self, at: Time | None = None) -> None:
        """Runs the periodic work now (gives back expired holds, fires expiry events). The
        vault does this on its own; replays and tests that drive time call it."""
        self._tick(at)

    def remaining(self, key_id: str, *, at: Time | None = None) -> Remaining:
        """The state of every limit of a key and of its owner."""
        return self._remaining(key_id, at)

    # ---- owners -------------------------------------------------------------------------

    def set_owner_policy(
        self,
        owner: str,
        limits: Iterable[LimitLike],
        *,
        at: Time | None = None,
        actor: str | None = None,
    ) -> None:
        """Sets an owner's limits, shared by all its keys, creating the owner if needed."""
        self._set_owner_policy(owner, _limits_json(limits), at, actor)

    def set_default_owner_policy(
        self,
        limits: Iterable[LimitLike],
        *,
        at: Time | None = None,
        actor: str | None = None,
    ) -> None:
        """Sets the limits an owner gets when it first appears (existing owners keep theirs)."""
        self._set_default_owner_policy(_limits_json(limits), at, actor)

    def default_owner_policy(self) -> tuple[Limit, ...]:
        """The limits a new owner gets."""
        return tuple(Limit._from(d) for d in self._default_owner_policy())

    def owner(self, owner: str) -> OwnerInfo:
        """An owner's limits and their state. Raises ``NotFound``."""
        return OwnerInfo._from(self._owner(owner))

    def owners(self) -> builtins.list[str]:
        """Every owner's name, sorted."""
        return self._owners()

    # ---- prices -------------------------------------------------------------------------

    def set_price(
        self,
        model: str,
        price: Price | Mapping[str, int] | None,
        *,
        at: Time | None = None,
        actor: str | None = None,
    ) -> None:
        """Sets a model's price (micro-units per million input and output tokens, and per
        request), or removes it with ``None``."""
        if price is None:
            json = None
        elif isinstance(price, Price):
            json = price._json()
        elif isinstance(price, Mapping):
            try:
                json = Price(**price)._json()
            except TypeError as err:
                raise InvalidArgument(f"price: {err}") from None
        else:
            raise InvalidArgument(f"price must be a Price or a dict, got {type(price).__name__}")
        self._set_price(model, json, at, actor)

    def import_prices(
        self,
        source: str | os.PathLike[str],
        *,
        at: Time | None = None,
        actor: str | None = None,
    ) -> PriceImport:
        """Imports LiteLLM's price JSON (``model_prices_and_context_window.json``), given as a
        path or as the JSON text itself (a ``str`` starting with ``{``). Each price is
        converted once, exactly, to integer micro-units."""
        if isinstance(source, str) and source.lstrip().startswith("{"):
            return PriceImport._from(self._import_prices(text=source, at=at, actor=actor))
        if isinstance(source, (str, os.PathLike)):
            return PriceImport._from(
                self._import_prices(path=os.fspath(source), at=at, actor=actor)
            )
        raise InvalidArgument(
            f"prices must be a path or JSON text, got {type(source).__name__}"
        )

    def price(self, model: str) -> Price | None:
        """A model's price, or ``None``."""
        json = self._price(model)
        return None if json is None else Price._from(json)

    def prices(self) -> dict[str, Price]:
        """Every price, by model."""
        return {model: Price._from(p) for model, p in self._prices().items()}

    # ---- reports ------------------------------------------------------------------------

    def usage(
        self,
        *,
        from_: Time | None = None,
        to: Time | None = None,
        key_id: str | None = None,
        owner: str | None = None,
        env: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        group_by: Sequence[str] = (),
        bucket: str | None = None,
        tz: str | None = None,
    ) -> builtins.list[UsageRow]:
        """Sums of the usage log from ``from_`` (inclusive) to ``to`` (exclusive), filtered,
        grouped by any of ``key``, ``owner``, ``env``, ``model``, ``endpoint``, ``outcome``,
        and bucketed by ``minute``, ``hour``, ``day``, ``week`` or ``month`` in the IANA zone
        ``tz`` (UTC by default)."""
        query = _query(from_, to, key_id, owner, env, model, endpoint, group_by, bucket, tz)
        return [UsageRow._from(row) for row in self._usage(query)]

    def usage_records(
        self,
        *,
        from_: Time | None = None,
        to: Time | None = None,
        key_id: str | None = None,
        owner: str | None = None,
        env: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[UsageRecord]:
        """The usage log's records, filtered, oldest first, at most ``limit``."""
        query = _query(from_, to, key_id, owner, env, model, endpoint, (), None, None)
        return [UsageRecord._from(r) for r in self._usage_records(query, limit)]

    def events(self, after: int = 0, limit: int = 100) -> builtins.list[Event]:
        """Events with a sequence number above ``after``, oldest first, at most ``limit``."""
        return [Event._from(e) for e in self._events(after, limit)]

    def subscribe(self, callback: Callable[[Event], object]) -> int:
        """Calls ``callback(event)`` with every event committed from now on; returns an id for
        ``unsubscribe``.

        The callback runs on the vault's commit thread, holding the GIL: keep it short, and do
        not call back into this vault from it (hand the event to a queue instead). An
        exception it raises goes to ``sys.unraisablehook`` and does not stop later events.
        """
        if not callable(callback):
            raise InvalidArgument("the event callback must be callable")

        def deliver(json: Mapping[str, Any]) -> None:
            callback(Event._from(json))

        return self._subscribe(deliver)

    def unsubscribe(self, subscription: int) -> bool:
        """Stops a subscription; returns whether it existed."""
        return self._unsubscribe(subscription)

    def audit(self, after: int = 0, limit: int = 100) -> builtins.list[AuditRecord]:
        """Audit records with a sequence number above ``after``, oldest first, at most
        ``limit``."""
        return [AuditRecord._from(r) for r in self._audit(after, limit)]

    def verify_audit(self) -> AuditCheck:
        """Checks the audit chain: every record present, each hash chained to the one
        before."""
        return AuditCheck._from(self._verify_audit())

    def stats(self) -> Stats:
        """Counts of keys, owners, outstanding holds and refused garbage."""
        return Stats._from(self._stats())

    def rekey(
        self,
        *,
        passphrase: str | None = None,
        key: bytes | str | None = None,
        kdf: KdfParams | Mapping[str, int] | None = None,
        at: Time | None = None,
        actor: str | None = None,
    ) -> None:
        """Re-seals the vault under a new passphrase or raw key (fresh salt, KDF parameters
        ``kdf``). Only the file header changes."""
        self._rekey(passphrase, key, _kdf(kdf), at, actor)


def _kdf(kdf: KdfParams | Mapping[str, int] | None) -> KdfParams | None:
    if kdf is None or isinstance(kdf, KdfParams):
        return kdf
    if isinstance(kdf, Mapping):
        try:
            return KdfParams(**kdf)
        except TypeError as err:
            raise InvalidArgument(f"kdf: {err}") from None
    raise InvalidArgument(f"kdf must be a KdfParams or a dict, got {type(kdf).__name__}")

"""Bad input of every kind is refused with nanu.InvalidArgument, and changes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

import nanu
from conftest import T0

U64_MAX = 2**64 - 1

BAD_INTEGERS: list[Any] = [
    -1,
    -(2**70),
    2**64,
    2**200,
    True,
    False,
    1.0,
    0.5,
    math.nan,
    math.inf,
    -math.inf,
    "5",
    b"5",
    Decimal(5),
    Fraction(5, 1),
    [5],
]

INTEGER_ARGUMENTS: dict[str, Callable[[nanu.Vault, nanu.Minted, Any], object]] = {
    "charge input_tokens": lambda v, k, n: v.charge(k.key_id, input_tokens=n),
    "charge output_tokens": lambda v, k, n: v.charge(k.key_id, output_tokens=n),
    "charge cost": lambda v, k, n: v.charge(k.key_id, cost=n),
    "charge hold_id": lambda v, k, n: v.charge(k.key_id, cost=1, hold_id=n),
    "verify hold_cost": lambda v, k, n: v.verify(k.secret, hold_cost=n),
    "verify hold_input_tokens": lambda v, k, n: v.verify(k.secret, hold_input_tokens=n),
    "verify hold_output_tokens": lambda v, k, n: v.verify(k.secret, hold_output_tokens=n),
    "verify hold dict": lambda v, k, n: v.verify(k.secret, hold={"cost": n}),
    "release": lambda v, k, n: v.release(n),
    "limit amount": lambda v, k, n: v.mint("acme", limits=[{"unit": "cost", "amount": n}]),
    "Limit amount": lambda v, k, n: v.mint("acme", limits=[nanu.Limit("tokens", n)]),
    "owner limit": lambda v, k, n: v.set_owner_policy("acme", [{"unit": "tokens", "amount": n}]),
    "price": lambda v, k, n: v.set_price("m", {"input_per_mtok": n}),
    "Price": lambda v, k, n: v.set_price("m", nanu.Price(per_request=n)),
    "events after": lambda v, k, n: v.events(after=n),
    "events limit": lambda v, k, n: v.events(limit=n),
    "audit after": lambda v, k, n: v.audit(after=n),
    "list limit": lambda v, k, n: v.list(limit=n),
    "usage_records limit": lambda v, k, n: v.usage_records(limit=n),
    "format_money": lambda v, k, n: nanu.format_money(n),
}


@pytest.mark.parametrize("value", BAD_INTEGERS, ids=repr)
@pytest.mark.parametrize("call", INTEGER_ARGUMENTS.values(), ids=INTEGER_ARGUMENTS.keys())
def test_bad_integers_are_refused(
    vault: nanu.Vault, call: Callable[[nanu.Vault, nanu.Minted, Any], object], value: Any
) -> None:
    key = vault.mint("acme", limits=["cost=$1"])
    before = (vault.stats(), vault.remaining(key.key_id), vault.usage())
    with pytest.raises(nanu.InvalidArgument) as info:
        call(vault, key, value)
    assert info.value.code == "invalid_argument"
    assert (vault.stats(), vault.remaining(key.key_id), vault.usage()) == before


def test_the_largest_integers_are_kept_exact(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=[nanu.Limit("tokens", U64_MAX)])
    assert vault.get(key.key_id).limits[0].amount == U64_MAX
    outcome = vault.charge(key.key_id, cost=U64_MAX, input_tokens=U64_MAX)
    assert outcome.cost == U64_MAX
    (row,) = vault.usage()
    assert row.cost == U64_MAX and row.input_tokens == U64_MAX and row.tokens == U64_MAX
    assert vault.remaining(key.key_id).tokens == 0
    with pytest.raises(nanu.InvalidArgument, match="overflows"):
        vault.charge(key.key_id, input_tokens=U64_MAX, output_tokens=1)
    assert nanu.format_money(U64_MAX) == "18446744073709.551615"


BAD_TIMES: list[Any] = [
    datetime(2025, 1, 1),
    date(2025, 1, 1),
    1.5e12,
    "2025-01-01T00:00:00Z",
    True,
    2**63,
    -(2**63) - 1,
    10**15,  # epoch milliseconds in the year 33658, past every supported year
]


@pytest.mark.parametrize("at", BAD_TIMES, ids=repr)
def test_bad_times_are_refused(vault: nanu.Vault, at: Any) -> None:
    key = vault.mint("acme")
    for call in (
        lambda: vault.verify(key.secret, at=at),
        lambda: vault.charge(key.key_id, at=at),
        lambda: vault.mint("acme", at=at),
        lambda: vault.mint("acme", expires_at=at),
        lambda: vault.usage(to=at),
    ):
        with pytest.raises(nanu.InvalidArgument):
            call()


def test_times_in_other_zones_are_the_same_instant(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["requests=1/hour"])
    kolkata = timezone(timedelta(hours=5, minutes=30))
    assert vault.verify(key.secret, at=T0.astimezone(kolkata)).allowed
    # The same hour, written as epoch milliseconds.
    assert vault.verify(key.secret, at=int(T0.timestamp() * 1000) + 1).code == "usage_exceeded"


BAD_TEXT: list[Any] = [None, 5, b"bytes", ["list"], 1.5]


def test_text_that_utf8_cannot_encode_is_an_invalid_argument(vault: nanu.Vault) -> None:
    key = vault.mint("acme")
    lone = "\ud800"
    for call in (
        lambda: vault.verify(key.secret, model=lone),
        lambda: vault.verify(key.secret, scope=lone),
        lambda: vault.verify(key.secret, ip=lone),
        lambda: vault.charge(lone, cost=1),
        lambda: vault.charge(key.key_id, request_id=lone),
        lambda: vault.mint(lone),
        lambda: vault.mint("acme", metadata={"k": lone}),
        lambda: vault.mint("acme", metadata={lone: "v"}),
    ):
        with pytest.raises(nanu.InvalidArgument, match="lone surrogate"):
            call()


@pytest.mark.parametrize("value", BAD_TEXT[1:], ids=repr)
def test_text_arguments_must_be_str(vault: nanu.Vault, value: Any) -> None:
    key = vault.mint("acme")
    for call in (
        lambda: vault.verify(value),
        lambda: vault.verify(key.secret, model=value),
        lambda: vault.verify(key.secret, scope=value),
        lambda: vault.verify(key.secret, env=value),
        lambda: vault.charge(value, cost=1),
        lambda: vault.charge(key.key_id, model=value),
        lambda: vault.charge(key.key_id, request_id=value),
        lambda: vault.get(value),
        lambda: vault.revoke(value),
        lambda: vault.mint(value),
        lambda: vault.mint("acme", name=value),
        lambda: vault.owner(value),
    ):
        with pytest.raises(nanu.InvalidArgument):
            call()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"owner": ""}, "owner"),
        ({"owner": "a\nb"}, "control character"),
        ({"owner": "x" * 201}, "owner"),
        ({"owner": "a", "env": "LIVE"}, "env"),
        ({"owner": "a", "scopes": "chat"}, "scopes must be a list"),
        ({"owner": "a", "scopes": [1]}, "scopes must be a list of str"),
        ({"owner": "a", "models": ["*"]}, "model pattern"),
        ({"owner": "a", "ips": ["example.com"]}, "ip range"),
        ({"owner": "a", "limits": "requests=1"}, "list of limits"),
        ({"owner": "a", "limits": ["requests=-1"]}, "requests"),
        ({"owner": "a", "limits": ["cost=10/month"]}, "currency"),
        ({"owner": "a", "limits": [{"unit": "dollars", "amount": 1}]}, "unknown limit unit"),
        ({"owner": "a", "limits": [{"unit": "cost", "amount": 1, "window": "fortnight"}]},
         "fortnight"),
        ({"owner": "a", "limits": [{"unit": "cost", "amount": 1, "color": "red"}]}, "color"),
        ({"owner": "a", "limits": [{"unit": "cost", "amount": 1, "window": "month",
                                    "tz": "Mars/Olympus"}]}, "time zone"),
        ({"owner": "a", "limits": [{"unit": "requests", "amount": 1, "window": "rolling"}]},
         "every"),
        ({"owner": "a", "limits": [{"unit": "tokens", "amount": 1, "alert_at": [80, 50]}]},
         "ascending"),
        ({"owner": "a", "limits": [{"unit": "tokens", "amount": 1, "alert_at": [math.nan]}]},
         "alert_at"),
        ({"owner": "a", "limits": [5]}, "a limit must be"),
        ({"owner": "a", "metadata": {"bad": math.nan}}, "not a finite number"),
        ({"owner": "a", "metadata": {1: "int key"}}, "not a str"),
        ({"owner": "a", "metadata": {"x": object()}}, "not a JSON value"),
        ({"owner": "a", "metadata": {"big": "x" * 20_000}}, "16 KiB"),
        ({"owner": "a", "metadata": ["not", "a", "dict"]}, "metadata must be a dict"),
        ({"owner": "a", "ttl": 5}, "ttl"),
        ({"owner": "a", "ttl": "-1h"}, "ttl"),
        ({"owner": "a", "rotate_every": "soon"}, "rotate_every"),
    ],
)
def test_bad_key_specs(vault: nanu.Vault, spec: dict[str, Any], message: str) -> None:
    with pytest.raises(nanu.InvalidArgument, match=message):
        vault.mint(**spec)
    assert vault.stats().keys == 0


def test_deeply_nested_metadata_is_refused(vault: nanu.Vault) -> None:
    nested: Any = "leaf"
    for _ in range(100):
        nested = {"n": nested}
    with pytest.raises(nanu.InvalidArgument, match="nested deeper"):
        vault.mint("acme", metadata=nested)
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(nanu.InvalidArgument, match="nested deeper"):
        vault.mint("acme", metadata=cyclic)


def test_bad_usage_queries(vault: nanu.Vault) -> None:
    with pytest.raises(nanu.InvalidArgument, match="time zone"):
        vault.usage(bucket="day", tz="Mars/Olympus")
    with pytest.raises(nanu.InvalidArgument):
        vault.usage(group_by=["color"])
    with pytest.raises(nanu.InvalidArgument):
        vault.usage(bucket="fortnight")
    with pytest.raises(nanu.InvalidArgument, match="from is after to"):
        vault.usage(from_=T0 + timedelta(1), to=T0)
    with pytest.raises(nanu.InvalidArgument, match="group_by must be a list"):
        vault.usage(group_by="model")


def test_bad_charges_change_nothing(vault: nanu.Vault) -> None:
    key = vault.mint("acme")
    cases: list[dict[str, Any]] = [
        {"model": "a/../b"},
        {"request_id": ""},
        {"request_id": "x" * 201},
        {"endpoint": "a\x00b"},
    ]
    for kwargs in cases:
        with pytest.raises(nanu.InvalidArgument):
            vault.charge(key.key_id, cost=1, **kwargs)
    assert vault.usage() == []


def test_bad_prices(vault: nanu.Vault) -> None:
    with pytest.raises(nanu.InvalidArgument, match="price must be"):
        vault.set_price("m", 5)  # type: ignore[arg-type]
    with pytest.raises(nanu.InvalidArgument, match="price"):
        vault.set_price("m", {"per_token": 1})
    with pytest.raises(nanu.InvalidArgument, match="model"):
        vault.set_price("../m", nanu.Price(1))
    with pytest.raises(nanu.InvalidArgument):
        vault.import_prices("{not json")
    with pytest.raises(nanu.InvalidArgument, match="path or JSON"):
        vault.import_prices(5)  # type: ignore[arg-type]
    with pytest.raises(nanu.Storage):
        vault.import_prices("/no/such/prices.json")
    assert vault.prices() == {}


def test_unknown_keyword_arguments_are_type_errors(vault: nanu.Vault) -> None:
    key = vault.mint("acme")
    with pytest.raises(TypeError):
        vault.verify(key.secret, modle="gpt-4o")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        vault.charge(key.key_id, tokens=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        vault.mint("acme", limit=["requests=1"])  # type: ignore[call-arg]


def test_money_and_limit_text() -> None:
    assert nanu.parse_money("$1.50") == 1_500_000
    assert nanu.format_money(1_500_000) == "1.50"
    with pytest.raises(nanu.InvalidArgument):
        nanu.parse_money("NaN")
    with pytest.raises(nanu.InvalidArgument):
        nanu.parse_money(1.5)  # type: ignore[arg-type]
    limit = nanu.Limit.parse("tokens=1M/day@Europe/Berlin")
    assert limit == nanu.Limit("tokens", 1_000_000, "day", tz="Europe/Berlin")
    assert str(limit) == "tokens=1M/day@Europe/Berlin"
    assert str(nanu.Limit("cost", 10_000_000, "month")) == "cost=$10/month"
    with pytest.raises(nanu.InvalidArgument):
        nanu.Limit.parse("tokens=lots")

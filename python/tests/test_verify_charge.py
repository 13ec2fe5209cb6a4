"""verify, charge and release: every verdict code, holds, idempotency, pricing."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

import nanu
from conftest import T0

GPT = nanu.Price(input_per_mtok=2_500_000, output_per_mtok=10_000_000)


def test_a_valid_verdict(vault: nanu.Vault) -> None:
    key = vault.mint("acme", env="test", limits=["requests=100/min", "tokens=1M/day",
                                                 "cost=$10/month"])
    vault.set_price("gpt-4o", GPT)
    verdict = vault.verify(key.secret, model="gpt-4o", at=T0)
    assert verdict.allowed is True
    assert verdict.code == "valid" and verdict.http_status == 200
    assert verdict.key_id == key.key_id and verdict.owner == "acme" and verdict.env == "test"
    assert verdict.model == "gpt-4o" and verdict.grace is False
    assert verdict.hold_id is None
    assert verdict.retry_after is None and verdict.retry_after_ms is None
    assert verdict.resets_at is None and verdict.denied_by is None
    remaining = verdict.remaining
    assert remaining is not None
    assert (remaining.requests, remaining.tokens, remaining.cost) == (99, 1_000_000, 10_000_000)
    assert remaining.input_tokens is None and remaining.output_tokens is None
    assert [s.limit.unit for s in remaining.limits] == ["requests", "tokens", "cost"]
    assert repr(verdict).startswith(f"Verdict(allowed=True, code='valid', key_id='{key.key_id}'")
    assert isinstance(verdict, nanu.Verdict)
    with pytest.raises(AttributeError):
        verdict.allowed = False  # type: ignore[misc]


@pytest.mark.parametrize(
    "secret",
    ["", "garbage", "nanu_live_", "x" * 10_000, "nanu_live_" + "A" * 49, " \t", "nanu_live_\x00"],
)
def test_malformed_secrets_are_verdicts(vault: nanu.Vault, secret: str) -> None:
    verdict = vault.verify(secret)
    assert (verdict.allowed, verdict.code, verdict.http_status) == (False, "malformed", 401)
    assert verdict.key_id is None and verdict.remaining is None


@pytest.mark.parametrize("secret", ["\ud800", "nanu_live_\udfff", "\udc80" * 60])
def test_a_secret_that_is_not_valid_text_is_malformed(vault: nanu.Vault, secret: str) -> None:
    verdict = vault.verify(secret)
    assert (verdict.allowed, verdict.code, verdict.http_status) == (False, "malformed", 401)


def test_a_typo_in_a_real_secret_is_malformed_and_an_unknown_one_not_found(
    vault: nanu.Vault,
) -> None:
    key = vault.mint("acme")
    typo = key.secret[:-1] + ("a" if key.secret[-1] != "a" else "b")
    assert vault.verify(typo).code == "malformed"
    other = nanu.Vault.create(vault.path.with_name("other.vault"), passphrase="p",
                              kdf=nanu.KdfParams.INSECURE_FOR_TESTS)
    foreign = other.mint("x").secret
    other.close()
    assert vault.verify(foreign).code == "not_found"
    assert vault.verify(f"  {key.secret}\n").allowed  # surrounding whitespace is trimmed
    stats = vault.stats()
    assert stats.malformed == 1 and stats.not_found == 1


def test_access_checks(vault: nanu.Vault) -> None:
    vault.set_price("gpt-4o", GPT)
    key = vault.mint("acme", env="live", scopes=["chat"], models=["gpt-4o", "local/*"],
                     aliases={"fast": "gpt-4o"}, ips=["10.0.0.0/8", "2001:db8::/32"],
                     limits=["cost=$1"])
    s = key.secret
    assert vault.verify(s, ip="10.1.2.3", scope="chat", model="fast", env="live").allowed
    assert vault.verify(s, ip="10.1.2.3", model="fast").model == "gpt-4o"
    assert vault.verify(s, ip=ipaddress.ip_address("10.9.9.9")).allowed
    assert vault.verify(s, ip=ipaddress.ip_address("2001:db8::5")).allowed
    assert vault.verify(s, ip="::ffff:10.0.0.1").allowed
    cases = {
        "ip_denied": dict(ip="192.168.0.1"),
        "env_mismatch": dict(ip="10.0.0.1", env="test"),
        "scope_denied": dict(ip="10.0.0.1", scope="admin"),
        "model_denied": dict(ip="10.0.0.1", model="gpt-3"),
        "model_unpriced": dict(ip="10.0.0.1", model="local/llama"),
    }
    for code, request in cases.items():
        verdict = vault.verify(s, **request)  # type: ignore[arg-type]
        assert (verdict.allowed, verdict.code, verdict.http_status) == (False, code, 403), code
    assert vault.verify(s).code == "ip_denied"  # an allowlist needs an address
    with pytest.raises(nanu.InvalidArgument, match="not an IPv4 or IPv6 address"):
        vault.verify(s, ip="10.0.0.300")
    with pytest.raises(nanu.InvalidArgument, match="ip must be a str"):
        vault.verify(s, ip=10)  # type: ignore[arg-type]


def test_rate_limit_retry_after(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["requests=2/min"])
    assert vault.verify(key.secret, at=T0).allowed
    assert vault.verify(key.secret, at=T0).allowed
    denied = vault.verify(key.secret, at=T0)
    assert (denied.code, denied.http_status) == ("rate_limited", 429)
    assert denied.retry_after_ms == 30_000
    assert denied.retry_after == timedelta(seconds=30)
    assert denied.resets_at == T0 + timedelta(minutes=1)
    assert denied.denied_by is not None
    assert (denied.denied_by.level, denied.denied_by.index) == ("key", 0)
    assert denied.denied_by.limit == nanu.Limit("requests", 2, "rolling", every="1m")
    assert "retry_after_ms=30000" in repr(denied)
    assert vault.verify(key.secret, at=T0 + timedelta(seconds=30)).allowed


def test_holds_settle_and_release(vault: nanu.Vault) -> None:
    vault.set_price("gpt-4o", GPT)
    key = vault.mint("acme", limits=["cost=$0.10", "tokens=10k"])
    first = vault.verify(key.secret, model="gpt-4o", hold={"cost": 30_000, "input_tokens": 100})
    second = vault.verify(key.secret, model="gpt-4o", hold_cost=30_000, hold_output_tokens=5)
    assert first.hold_id is not None and second.hold_id is not None
    assert first.hold_id != second.hold_id
    assert second.remaining is not None and second.remaining.cost == 40_000
    assert vault.stats().holds == 2
    outcome = vault.charge(key.key_id, model="gpt-4o", input_tokens=1000, output_tokens=500,
                           request_id="r1", hold_id=first.hold_id)
    assert (outcome.cost, outcome.priced, outcome.replayed) == (7500, True, False)
    assert outcome.key_id == key.key_id and outcome.exceeded == ()
    assert vault.release(second.hold_id) is True
    assert vault.release(second.hold_id) is False
    assert vault.release(2**64 - 1) is False
    assert vault.remaining(key.key_id).cost == 100_000 - 7500
    with pytest.raises(nanu.InvalidArgument, match="not both"):
        vault.verify(key.secret, hold={"cost": 1}, hold_cost=1)
    with pytest.raises(nanu.InvalidArgument, match="hold"):
        vault.verify(key.secret, hold={"cost": -1})
    with pytest.raises(nanu.InvalidArgument, match="hold"):
        vault.verify(key.secret, hold={"dollars": 1})


def test_a_hold_of_another_key_is_refused(vault: nanu.Vault) -> None:
    a = vault.mint("acme", limits=["cost=$1"])
    b = vault.mint("acme")
    hold = vault.verify(a.secret, hold_cost=10).hold_id
    with pytest.raises(nanu.InvalidArgument, match="another key"):
        vault.charge(b.key_id, cost=1, hold_id=hold)


def test_unsettled_holds_expire_on_tick(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["cost=$1"])
    vault.verify(key.secret, hold_cost=600_000, at=T0)
    assert vault.remaining(key.key_id, at=T0).cost == 400_000
    vault.tick(T0 + timedelta(minutes=11))
    assert vault.remaining(key.key_id, at=T0 + timedelta(minutes=11)).cost == 1_000_000
    assert vault.stats().holds == 0


def test_charges_are_idempotent_by_request_id(vault: nanu.Vault) -> None:
    key = vault.mint("acme")
    first = vault.charge(key.key_id, input_tokens=5, cost=10, request_id="abc")
    again = vault.charge(key.key_id, input_tokens=5, cost=10, request_id="abc")
    assert not first.replayed and again.replayed and again.cost == 10
    with pytest.raises(nanu.Conflict) as info:
        vault.charge(key.key_id, input_tokens=6, cost=10, request_id="abc")
    assert info.value.code == "conflict" and "abc" in str(info.value)
    (row,) = vault.usage()
    assert (row.requests, row.input_tokens, row.cost) == (1, 5, 10)


def test_a_budget_runs_out(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["cost=$0.01"])
    assert vault.verify(key.secret).allowed
    outcome = vault.charge(key.key_id, cost=15_000)
    (exceeded,) = outcome.exceeded
    assert exceeded.limit.unit == "cost" and exceeded.used == 15_000 and exceeded.remaining == 0
    assert "exceeded=1" in repr(outcome)
    denied = vault.verify(key.secret)
    assert (denied.code, denied.http_status) == ("budget_exceeded", 429)
    assert vault.verify(key.secret).code == "budget_exceeded"
    kinds = [e.kind for e in vault.events()]
    assert "exhausted" in kinds and kinds.count("threshold") >= 2


def test_usage_and_token_limits(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["requests=1", "tokens=30B"])
    assert vault.verify(key.secret).allowed
    denied = vault.verify(key.secret)
    assert (denied.code, denied.http_status, denied.retry_after_ms) == ("usage_exceeded", 429,
                                                                        None)
    other = vault.mint("acme", limits=["tokens=30B"])
    vault.charge(other.key_id, input_tokens=29_999_999_999)
    remaining = vault.remaining(other.key_id)
    assert remaining.tokens == 1
    vault.charge(other.key_id, output_tokens=2**64 - 1 - 29_999_999_999 - 5)
    assert vault.remaining(other.key_id).tokens == 0


def test_unpriced_charges(vault: nanu.Vault) -> None:
    key = vault.mint("acme")
    outcome = vault.charge(key.key_id, model="mystery", input_tokens=10)
    assert (outcome.cost, outcome.priced) == (0, False)
    assert [e.model for e in vault.events() if e.kind == "unpriced"] == ["mystery"]
    assert vault.charge(key.key_id).priced  # nothing used, nothing to price


def test_a_disabled_or_revoked_key(vault: nanu.Vault) -> None:
    key = vault.mint("acme")
    vault.update(key.key_id, disabled=True)
    assert (vault.verify(key.secret).code, vault.verify(key.secret).http_status) == (
        "disabled", 403)
    vault.revoke(key.key_id)
    assert (vault.verify(key.secret).code, vault.verify(key.secret).http_status) == (
        "revoked", 401)


def test_charge_of_a_missing_key(vault: nanu.Vault) -> None:
    with pytest.raises(nanu.NotFound, match="key_missing"):
        vault.charge("key_missing", cost=1)


def test_verdict_and_outcome_classes_are_exported() -> None:
    assert nanu.Verdict.__module__ == "nanu" and nanu.ChargeOutcome.__module__ == "nanu"
    assert nanu.CODES[0] == "valid" and len(nanu.CODES) == 14
    with pytest.raises(TypeError):
        nanu.Verdict()

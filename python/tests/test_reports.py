"""Prices, usage reports, events, the audit trail and the alert callback."""

from __future__ import annotations

import queue
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import nanu
from conftest import SHARED_DATA, T0

LITELLM = SHARED_DATA / "litellm-model-prices-1.110.2.json"


def test_set_and_remove_prices(vault: nanu.Vault) -> None:
    vault.set_price("gpt-4o", nanu.Price(2_500_000, 10_000_000), actor="ops")
    vault.set_price("per-call", {"per_request": 1_000})
    assert vault.price("gpt-4o") == nanu.Price(2_500_000, 10_000_000, 0)
    assert vault.prices() == {"gpt-4o": nanu.Price(2_500_000, 10_000_000),
                              "per-call": nanu.Price(per_request=1_000)}
    key = vault.mint("acme")
    assert vault.charge(key.key_id, model="gpt-4o", input_tokens=1, output_tokens=1).cost == 13
    assert vault.charge(key.key_id, model="per-call").cost == 1_000
    vault.set_price("gpt-4o", None)
    assert vault.price("gpt-4o") is None


@pytest.mark.skipif(not LITELLM.exists(), reason=f"{LITELLM} is not beside the checkout")
def test_import_litellm_prices_from_the_real_file(vault: nanu.Vault) -> None:
    report = vault.import_prices(LITELLM)
    assert report.imported > 1000
    assert all(isinstance(model, str) and why for model, why in report.skipped)
    prices = vault.prices()
    assert len(prices) == report.imported
    # gpt-4o: $2.50 and $10 per million tokens in this file.
    assert prices["gpt-4o"] == nanu.Price(2_500_000, 10_000_000)
    key = vault.mint("acme", limits=["cost=$1"])
    assert vault.verify(key.secret, model="gpt-4o").allowed
    assert vault.verify(key.secret, model="no-such-model").code == "model_unpriced"
    # The same file as text gives the same table.
    other = nanu.Vault.create(vault.path.with_name("text.vault"), passphrase="p",
                              kdf=nanu.KdfParams.INSECURE_FOR_TESTS)
    with other:
        assert other.import_prices(LITELLM.read_text()).imported == report.imported
        assert other.prices() == prices


def test_import_prices_from_json_text(vault: nanu.Vault, tmp_path: Path) -> None:
    text = '{"tiny": {"input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7}}'
    report = vault.import_prices(text)
    assert report.imported == 1
    assert vault.price("tiny") == nanu.Price(100_000, 400_000)
    path = tmp_path / "prices.json"
    path.write_text(text)
    assert vault.import_prices(path).imported == 1


def test_usage_groups_buckets_and_filters(vault: nanu.Vault) -> None:
    a = vault.mint("acme", env="live")
    b = vault.mint("beta", env="test")
    charges = [
        (a, "m1", "/chat", 10, 1, 100, T0),
        (a, "m2", "/chat", 20, 2, 200, T0 + timedelta(hours=1)),
        (b, "m1", "/embed", 30, 3, 300, T0 + timedelta(days=1)),
    ]
    for i, (key, model, endpoint, i_tok, o_tok, cost, at) in enumerate(charges):
        vault.charge(key.key_id, model=model, endpoint=endpoint, input_tokens=i_tok,
                     output_tokens=o_tok, cost=cost, request_id=f"r{i}", at=at)
    vault.verify(a.secret, scope="missing", at=T0)  # a denial of a known key is logged too
    (total,) = vault.usage()
    assert (total.requests, total.denied, total.tokens, total.cost) == (3, 1, 66, 600)
    assert total.bucket is None and total.group == {}
    by_owner = vault.usage(group_by=["owner"])
    assert [(r.group["owner"], r.cost) for r in by_owner] == [("acme", 300), ("beta", 300)]
    by_day = vault.usage(bucket="day", tz="UTC")
    assert [(r.bucket, r.requests) for r in by_day] == [(T0, 2), (T0 + timedelta(days=1), 1)]
    assert by_day[0].bucket is not None and by_day[0].bucket.tzinfo is not None
    assert [r.cost for r in vault.usage(model="m1")] == [400]
    assert [r.cost for r in vault.usage(endpoint="/chat", env="live")] == [300]
    assert [r.cost for r in vault.usage(key_id=b.key_id)] == [300]
    assert [r.cost for r in vault.usage(from_=T0 + timedelta(minutes=30),
                                        to=T0 + timedelta(days=2))] == [500]
    outcomes = vault.usage(group_by=["outcome"])
    assert {r.group["outcome"]: (r.requests, r.denied) for r in outcomes} == {
        "charged": (3, 0), "scope_denied": (0, 1)}
    records = vault.usage_records(owner="acme", limit=10)
    # The denial asked for T0, but a key's time never goes back: it is logged at the key's
    # last seen time, after the second charge.
    assert [r.outcome for r in records] == ["charged", "charged", "scope_denied"]
    assert records[2].at == T0 + timedelta(hours=1)
    assert records[0].request_id == "r0" and records[0].at == T0
    assert len(vault.usage_records(limit=1)) == 1


def test_events_are_ordered_and_paged(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["requests=4"])
    for _ in range(4):
        vault.verify(key.secret, at=T0)
    vault.flush()
    events = vault.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [(e.kind, e.percent) for e in events] == [
        ("threshold", 50), ("threshold", 80), ("threshold", 100), ("exhausted", None)]
    first = events[0]
    assert first.key_id == key.key_id and first.owner == "acme" and first.at == T0
    assert first.limit is not None and first.limit.limit == nanu.Limit("requests", 4)
    assert vault.events(after=2, limit=1) == [events[2]]


def test_the_audit_trail_is_chained(vault: nanu.Vault) -> None:
    key = vault.mint("acme", actor="alice")
    vault.update(key.key_id, name="renamed", actor="bob")
    vault.revoke(key.key_id, actor="carol")
    records = vault.audit()
    assert [r.action for r in records] == ["create", "mint", "update", "revoke"]
    assert [r.actor for r in records] == [None, "alice", "bob", "carol"]
    assert records[2].detail == {"changed": {"name": "renamed"}}
    assert all(len(r.hash) == 64 for r in records)
    check = vault.verify_audit()
    assert check == nanu.AuditCheck(records=4, ok=True, first_bad=None)
    assert vault.audit(after=3) == records[3:]


def test_stats(vault: nanu.Vault) -> None:
    vault.mint("acme")
    vault.mint("beta", limits=["cost=$1"])
    vault.verify("garbage")
    assert vault.stats() == nanu.Stats(keys=2, owners=2, malformed=1, not_found=0, holds=0,
                                       corrupt_keys=0)


def test_the_alert_callback_gets_every_event(vault: nanu.Vault) -> None:
    got: queue.Queue[tuple[nanu.Event, str]] = queue.Queue()

    def on_event(event: nanu.Event) -> None:
        got.put((event, threading.current_thread().name))

    subscription = vault.subscribe(on_event)
    key = vault.mint("acme", limits=["cost=$1"])
    vault.charge(key.key_id, cost=600_000)
    vault.charge(key.key_id, cost=500_000)
    vault.revoke(key.key_id)
    seen = [got.get(timeout=10) for _ in range(5)]
    kinds = [(e.kind, e.percent) for e, _ in seen]
    assert kinds == [("threshold", 50), ("threshold", 80), ("threshold", 100),
                     ("exhausted", None), ("revoked", None)]
    assert all(isinstance(e, nanu.Event) for e, _ in seen)
    # The callback runs on the vault's commit thread, not the caller's.
    assert {name for _, name in seen} != {threading.current_thread().name}
    assert [e.seq for e, _ in seen] == [e.seq for e in vault.events()]
    assert vault.unsubscribe(subscription) is True
    assert vault.unsubscribe(subscription) is False
    vault.mint("late", ttl="1h")
    vault.revoke(vault.mint("late").key_id)
    vault.flush()
    assert got.empty()


def test_an_exception_in_the_callback_is_reported_and_delivery_goes_on(
    vault: nanu.Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    calls: list[str] = []

    def broken(event: nanu.Event) -> None:
        calls.append(event.kind)
        raise RuntimeError("callback bug")

    vault.subscribe(broken)
    for _ in range(2):
        vault.revoke(vault.mint("acme").key_id)
    vault.flush()
    assert calls == ["revoked", "revoked"]
    assert len(reported) == 2
    assert isinstance(reported[0].exc_value, RuntimeError)
    assert vault.verify(vault.mint("acme").secret).allowed


def test_the_callback_does_not_deadlock_durable_charges_from_threads(vault: nanu.Vault) -> None:
    # Durable charges wait for the commit thread, which needs the GIL for the callback:
    # charges from several Python threads must all complete.
    count = 0
    lock = threading.Lock()

    def on_event(event: nanu.Event) -> None:
        nonlocal count
        with lock:
            count += 1

    vault.subscribe(on_event)
    keys = [vault.mint(f"owner{i}", limits=["tokens=100"]) for i in range(4)]

    def work(key: nanu.Minted) -> None:
        for i in range(100):
            vault.charge(key.key_id, input_tokens=1, cost=0, request_id=f"r{i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    vault.flush()
    # Each key crossed 50, 80 and 100 percent and was exhausted once.
    assert count == 4 * 4


def test_a_callback_that_waits_on_the_vault_gets_an_error_not_a_deadlock(
    vault: nanu.Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    seen: list[str] = []

    def reentrant(event: nanu.Event) -> None:
        seen.append(event.kind)
        assert vault.verify("garbage").code == "malformed"  # never waits: allowed
        vault.events()  # waits for the commit thread it runs on: refused

    vault.subscribe(reentrant)
    vault.revoke(vault.mint("acme").key_id)
    vault.flush()
    assert seen == ["revoked"]
    (report,) = reported
    assert isinstance(report.exc_value, nanu.InvalidArgument)
    assert "event callback" in str(report.exc_value)

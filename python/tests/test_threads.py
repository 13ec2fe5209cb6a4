"""Many Python threads on one vault: every limit holds exactly."""

from __future__ import annotations

import threading
from collections import Counter

import nanu


def run_threads(count: int, work: object) -> None:
    barrier = threading.Barrier(count)

    def start(i: int) -> None:
        barrier.wait()
        work(i)  # type: ignore[operator]

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)


def test_concurrent_verifies_admit_exactly_the_limit(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["requests=1000", "tokens=1M/day", "cost=$10/month"])
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def work(_: int) -> None:
        mine: Counter[str] = Counter()
        for _ in range(250):
            mine[vault.verify(key.secret).code] += 1
        with lock:
            codes.update(mine)

    run_threads(8, work)
    assert codes == Counter({"valid": 1000, "usage_exceeded": 1000})
    assert vault.remaining(key.key_id).requests == 0


def test_concurrent_verifies_share_an_owner_limit(vault: nanu.Vault) -> None:
    vault.set_owner_policy("acme", ["requests=500"])
    keys = [vault.mint("acme") for _ in range(4)]
    allowed = [0] * 4

    def work(i: int) -> None:
        for _ in range(300):
            if vault.verify(keys[i].secret).allowed:
                allowed[i] += 1

    run_threads(4, work)
    assert sum(allowed) == 500


def test_concurrent_holds_never_overshoot_a_budget(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["cost=$1"])
    holds: list[int] = []
    lock = threading.Lock()

    def work(_: int) -> None:
        for _ in range(50):
            verdict = vault.verify(key.secret, hold_cost=30_000)
            if verdict.allowed:
                assert verdict.hold_id is not None
                with lock:
                    holds.append(verdict.hold_id)

    run_threads(6, work)
    assert len(holds) == 33  # 33 * 0.03 <= 1 < 34 * 0.03
    assert len(set(holds)) == 33


def test_concurrent_durable_charges_all_land(vault: nanu.Vault) -> None:
    keys = [vault.mint(f"owner{i % 2}") for i in range(8)]

    def work(i: int) -> None:
        for n in range(40):
            outcome = vault.charge(keys[i].key_id, input_tokens=3, output_tokens=1, cost=5,
                                   request_id=f"{i}-{n}")
            assert not outcome.replayed

    run_threads(8, work)
    rows = vault.usage(group_by=["owner"])
    assert [(r.group["owner"], r.requests, r.tokens, r.cost) for r in rows] == [
        ("owner0", 160, 640, 800), ("owner1", 160, 640, 800)]


def test_verify_and_admin_calls_interleave(vault: nanu.Vault) -> None:
    # No limit: a denied verify of a known key writes a usage record, and a flood of them
    # would test the commit thread's throughput instead.
    key = vault.mint("acme")
    stop = threading.Event()
    errors: list[BaseException] = []
    verdicts: list[int] = []

    def verifier() -> None:
        allowed = 0
        try:
            while not stop.is_set():
                allowed += vault.verify(key.secret).allowed
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)
        verdicts.append(allowed)

    threads = [threading.Thread(target=verifier) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            vault.mint(f"other{i}")
            vault.update(key.key_id, metadata={"round": i})
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    assert len(verdicts) == 3 and all(n > 0 for n in verdicts)
    assert vault.get(key.key_id).metadata == {"round": 29}

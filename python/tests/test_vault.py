"""Opening, creating, closing and re-keying vault files."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import nanu
from conftest import new_vault


def test_create_open_and_reopen_keep_keys(vault_path: Path) -> None:
    with new_vault(vault_path) as vault:
        assert isinstance(vault, nanu.Vault)
        assert vault.path == vault_path
        assert vault.prefix == "nanu"
        assert vault.currency == "usd"
        assert vault.durability == "durable"
        assert not vault.closed
        minted = vault.mint("acme", name="first")
    assert vault.closed
    with nanu.Vault.open(vault_path, passphrase="test passphrase") as vault:
        assert vault.get(minted.key_id).name == "first"
        assert vault.verify(minted.secret).allowed


def test_create_refuses_an_existing_file(vault_path: Path) -> None:
    new_vault(vault_path).close()
    with pytest.raises(nanu.InvalidArgument, match="already exists"):
        new_vault(vault_path)


def test_open_with_the_wrong_passphrase(vault_path: Path) -> None:
    new_vault(vault_path).close()
    with pytest.raises(nanu.WrongPassphrase) as info:
        nanu.Vault.open(vault_path, passphrase="not it")
    assert info.value.code == "wrong_passphrase"
    assert "not it" not in str(info.value)


def test_open_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(nanu.NotFound):
        nanu.Vault.open(tmp_path / "missing.vault", passphrase="x")


def test_open_a_file_that_is_not_a_vault(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a vault\n" * 100)
    with pytest.raises(nanu.NotAVault) as info:
        nanu.Vault.open(path, passphrase="x")
    assert info.value.code == "not_a_vault"


def test_a_second_handle_on_an_open_file_is_locked(vault: nanu.Vault) -> None:
    with pytest.raises(nanu.Error) as info:
        nanu.Vault.open(vault.path, passphrase="test passphrase")
    assert info.value.code in ("locked", "storage")


def test_a_second_process_is_locked_out(vault: nanu.Vault) -> None:
    script = textwrap.dedent(
        f"""
        import nanu
        try:
            nanu.Vault.open({str(vault.path)!r}, passphrase="test passphrase")
        except nanu.Error as err:
            print(err.code)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "locked"


def test_raw_key_unlock_bytes_and_hex(tmp_path: Path) -> None:
    raw = bytes(range(32))
    path = tmp_path / "raw.vault"
    nanu.Vault.create(path, key=raw).close()
    nanu.Vault.open(path, key=raw.hex()).close()
    with pytest.raises(nanu.WrongPassphrase):
        nanu.Vault.open(path, key=bytes(32))
    with pytest.raises(nanu.InvalidArgument, match="32 bytes"):
        nanu.Vault.open(path, key=b"short")
    with pytest.raises(nanu.InvalidArgument, match="64 hex digits"):
        nanu.Vault.open(path, key="abc")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give a passphrase or a key"),
        ({"passphrase": "a", "key": bytes(32)}, "not both"),
        ({"passphrase": ""}, "empty"),
        ({"passphrase": 5}, "passphrase must be a str"),
        ({"passphrase": "a", "durability": "eventually"}, "unknown durability"),
        ({"passphrase": "a", "prefix": "Bad-Prefix"}, "prefix"),
        ({"passphrase": "a", "currency": ""}, "currency"),
        ({"passphrase": "a", "flush_interval_ms": 0}, "at least 1 millisecond"),
        ({"passphrase": "a", "flush_interval_ms": -1}, "from 1 to 18446744073709551615"),
        ({"passphrase": "a", "flush_interval_ms": 2**64}, "from 1 to 18446744073709551615"),
        ({"passphrase": "a", "hold_timeout_ms": -5}, "hold_timeout_ms"),
        ({"passphrase": "a", "hold_timeout_ms": 1.5}, "hold_timeout_ms"),
        ({"passphrase": "a", "kdf": {"m_cost_kib": 8, "t_cost": 1}}, "kdf"),
        ({"passphrase": "a", "kdf": {"m_cost_kib": 2**40, "t_cost": 1, "p_cost": 1}},
         "too large"),
        ({"passphrase": "a", "kdf": {"m_cost_kib": 1, "t_cost": 1, "p_cost": 1}}, "kdf"),
    ],
)
def test_bad_options_create_nothing(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.vault"
    with pytest.raises(nanu.InvalidArgument, match=message):
        nanu.Vault.create(path, **options)  # type: ignore[arg-type]
    assert not path.exists()


def test_prefix_currency_and_levels(tmp_path: Path) -> None:
    for level in ("durable", "process", "relaxed"):
        path = tmp_path / f"{level}.vault"
        with new_vault(path, durability=level, prefix="acme", currency="eur") as vault:
            assert vault.durability == level
            minted = vault.mint("o", env="test")
            assert minted.secret.startswith("acme_test_")
        with nanu.Vault.open(path, passphrase="test passphrase", durability=level) as vault:
            assert vault.currency == "eur"
            assert vault.prefix == "acme"


def test_the_constructor_points_to_open_and_create() -> None:
    with pytest.raises(TypeError, match="Vault.open"):
        nanu.Vault("x.vault")


def test_every_call_on_a_closed_vault_raises_closed(vault_path: Path) -> None:
    vault = new_vault(vault_path)
    minted = vault.mint("acme")
    vault.close()
    vault.close()  # harmless
    calls: list[Callable[[], object]] = [
        lambda: vault.verify(minted.secret),
        lambda: vault.charge(minted.key_id, input_tokens=1),
        lambda: vault.release(1),
        lambda: vault.flush(),
        lambda: vault.mint("acme"),
        lambda: vault.mint_many([{"owner": "a"}]),
        lambda: vault.get(minted.key_id),
        lambda: vault.list(),
        lambda: vault.update(minted.key_id, name="x"),
        lambda: vault.revoke(minted.key_id),
        lambda: vault.revoke_owner("acme"),
        lambda: vault.rotate(minted.key_id),
        lambda: vault.rotate_due(),
        lambda: vault.tick(),
        lambda: vault.remaining(minted.key_id),
        lambda: vault.set_owner_policy("acme", []),
        lambda: vault.set_default_owner_policy([]),
        lambda: vault.default_owner_policy(),
        lambda: vault.owner("acme"),
        lambda: vault.owners(),
        lambda: vault.set_price("m", None),
        lambda: vault.import_prices("{}"),
        lambda: vault.price("m"),
        lambda: vault.prices(),
        lambda: vault.usage(),
        lambda: vault.usage_records(),
        lambda: vault.events(),
        lambda: vault.subscribe(print),
        lambda: vault.audit(),
        lambda: vault.verify_audit(),
        lambda: vault.stats(),
        lambda: vault.rekey(passphrase="new"),
    ]
    for call in calls:
        with pytest.raises(nanu.Closed) as info:
            call()
        assert info.value.code == "closed"
    assert "closed" in repr(vault)


def test_rekey_changes_the_passphrase(vault_path: Path) -> None:
    with new_vault(vault_path) as vault:
        minted = vault.mint("acme")
        vault.rekey(passphrase="new passphrase", kdf=nanu.KdfParams.INSECURE_FOR_TESTS,
                    actor="admin")
        assert vault.audit(after=0, limit=10)[-1].action == "rekey"
    with pytest.raises(nanu.WrongPassphrase):
        nanu.Vault.open(vault_path, passphrase="test passphrase")
    with nanu.Vault.open(vault_path, passphrase="new passphrase") as vault:
        assert vault.verify(minted.secret).allowed
        vault.rekey(key=bytes(range(32)))
    nanu.Vault.open(vault_path, key=bytes(range(32))).close()


def test_dropping_the_last_reference_closes_the_file(vault_path: Path) -> None:
    vault = new_vault(vault_path)
    vault.mint("acme")
    del vault
    gc.collect()
    # The file lock is gone: the vault opens again in this process.
    nanu.Vault.open(vault_path, passphrase="test passphrase").close()


def test_an_open_vault_is_closed_at_interpreter_exit(tmp_path: Path) -> None:
    path = tmp_path / "exit.vault"
    script = textwrap.dedent(
        f"""
        import nanu
        vault = nanu.Vault.create({str(path)!r}, passphrase="p",
                                  kdf=nanu.KdfParams.INSECURE_FOR_TESTS, durability="relaxed",
                                  flush_interval_ms=3_600_000)
        key = vault.mint("acme", limits=["requests=10"])
        for _ in range(3):
            assert vault.verify(key.secret).allowed
        print(key.key_id)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60)
    key_id = out.stdout.strip()
    with nanu.Vault.open(path, passphrase="p") as vault:
        # The relaxed level flushes only hourly here, so these counts reached the file only
        # through the close at exit.
        assert vault.remaining(key_id).requests == 7


def test_the_kdf_runs_without_the_gil(tmp_path: Path) -> None:
    # A real KDF (64 MiB, 3 passes) takes a good fraction of a second. While it runs in
    # another thread, this thread must keep running: the longest pause between two of its
    # steps stays far below the KDF's duration.
    done = threading.Event()
    took: list[float] = []

    def create() -> None:
        start = time.perf_counter()
        nanu.Vault.create(tmp_path / "kdf.vault", passphrase="p").close()
        took.append(time.perf_counter() - start)
        done.set()

    worker = threading.Thread(target=create)
    worker.start()
    longest = 0.0
    last = time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    worker.join()
    assert took[0] > 0.1, f"the KDF took only {took[0]:.3f}s: the test proves nothing"
    assert longest < took[0] / 2, f"paused {longest:.3f}s of a {took[0]:.3f}s KDF"


def test_process_level_survives_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "crash.vault"
    script = textwrap.dedent(
        f"""
        import os, nanu
        vault = nanu.Vault.create({str(path)!r}, passphrase="p",
                                  kdf=nanu.KdfParams.INSECURE_FOR_TESTS, durability="process",
                                  flush_interval_ms=3_600_000)
        key = vault.mint("acme")
        for i in range(25):
            vault.charge(key.key_id, input_tokens=10, output_tokens=1, cost=7,
                         request_id=f"r{{i}}")
        print(key.key_id, flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == -9
    key_id = out.stdout.strip()
    with nanu.Vault.open(path, passphrase="p", durability="process") as vault:
        (row,) = vault.usage(key_id=key_id)
        assert (row.requests, row.input_tokens, row.cost) == (25, 250, 175)


def test_repr_names_the_file_and_level(vault: nanu.Vault) -> None:
    assert repr(vault) == f"<nanu.Vault {str(vault.path)!r} (durable)>"


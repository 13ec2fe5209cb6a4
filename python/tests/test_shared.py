"""Several Python processes on one vault file with ``concurrency="shared"``: the option, limits
exact across real processes, an admin change seen by another process's next verify, and the
two modes refusing each other."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

import nanu
from conftest import new_vault

PASSPHRASE = "test passphrase"

# A child process: opens the vault, says "ready", then runs the commands it reads from its
# standard input, one a line, answering each with one line.
AGENT = textwrap.dedent(
    """
    import sys
    import nanu

    path, concurrency = sys.argv[1], sys.argv[2]
    try:
        vault = nanu.Vault.open(path, passphrase="test passphrase", concurrency=concurrency,
                                lease_timeout_ms=1000)
    except nanu.Error as err:
        print(f"error {err.code} {err.message}", flush=True)
        sys.exit(0)
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "verify":
            print(vault.verify(words[1]).code, flush=True)
        elif words[0] == "drain":
            # Verifies until 50 denials in a row; answers how many were admitted.
            admitted = denied = 0
            while denied < 50:
                verdict = vault.verify(words[1])
                if verdict.allowed:
                    admitted, denied = admitted + 1, 0
                else:
                    assert verdict.code == "usage_exceeded", verdict.code
                    denied += 1
            print(admitted, flush=True)
        elif words[0] == "close":
            vault.close()
            print("closed", flush=True)
    """
)


class Agent:
    """A child Python process with the vault open."""

    def __init__(self, path: Path, concurrency: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", AGENT, str(path), concurrency],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.first = self.answer()

    def answer(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the agent ended (status {self.process.poll()})"
        return line.strip()

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def ask(self, command: str) -> str:
        self.send(command)
        return self.answer()

    def finish(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0


@contextmanager
def agents(path: Path, count: int, concurrency: str = "shared") -> Iterator[list[Agent]]:
    started = [Agent(path, concurrency) for _ in range(count)]
    try:
        yield started
    finally:
        for agent in started:
            if agent.process.poll() is None:
                agent.process.kill()
                agent.process.wait(timeout=60)


def shared_vault(path: Path) -> nanu.Vault:
    return new_vault(path, concurrency="shared", lease_timeout_ms=timedelta(seconds=1))


def test_the_concurrency_option_and_property(vault_path: Path) -> None:
    with new_vault(vault_path) as vault:
        assert vault.concurrency == "exclusive"
    with nanu.Vault.open(vault_path, passphrase=PASSPHRASE, concurrency="shared",
                         lease_timeout_ms=1500) as vault:
        assert vault.concurrency == "shared"
        assert vault.durability == "durable"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": "both"}, "unknown concurrency"),
        ({"concurrency": 1}, "concurrency must be a str"),
        ({"concurrency": "shared", "durability": "process"}, "durable"),
        ({"concurrency": "shared", "durability": "relaxed"}, "durable"),
        ({"lease_timeout_ms": 0}, "at least 1 millisecond"),
        ({"lease_timeout_ms": 5}, "at least 10 ms"),
        ({"lease_timeout_ms": -1}, "lease_timeout_ms"),
    ],
)
def test_bad_concurrency_options_are_refused(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.vault"
    with pytest.raises(nanu.InvalidArgument, match=message):
        new_vault(path, **options)
    assert not path.exists()


def test_four_processes_admit_exactly_a_request_limit(vault_path: Path) -> None:
    with shared_vault(vault_path) as vault:
        key = vault.mint("acme", limits=["requests=300"])
    with agents(vault_path, 4) as started:
        assert [a.first for a in started] == ["ready"] * 4
        for agent in started:
            agent.send(f"drain {key.secret}")
        admitted = [int(agent.answer()) for agent in started]
        assert sum(admitted) == 300, admitted
        for agent in started:
            assert agent.ask("close") == "closed"
            agent.finish()
    with nanu.Vault.open(vault_path, passphrase=PASSPHRASE) as vault:
        assert vault.remaining(key.key_id).requests == 0


def test_a_revoke_in_this_process_is_seen_by_the_next_verify_of_another(
    vault_path: Path,
) -> None:
    with shared_vault(vault_path) as vault:
        key = vault.mint("acme")
        with agents(vault_path, 1) as (other,):
            assert other.first == "ready"
            assert other.ask(f"verify {key.secret}") == "valid"
            vault.revoke(key.key_id)
            assert other.ask(f"verify {key.secret}") == "revoked"
            minted = vault.mint("acme")
            assert other.ask(f"verify {minted.secret}") == "valid"
            other.finish()


def test_the_modes_refuse_each_other(vault_path: Path) -> None:
    with shared_vault(vault_path):
        with agents(vault_path, 1, "exclusive") as (other,):
            code, message = other.first.split(" ", 2)[1:]
            assert code == "locked"
            assert "shared" in message
            other.finish()
    with nanu.Vault.open(vault_path, passphrase=PASSPHRASE):
        with agents(vault_path, 1, "shared") as (other,):
            code, message = other.first.split(" ", 2)[1:]
            assert code == "locked"
            assert "exclusive" in message
            other.finish()

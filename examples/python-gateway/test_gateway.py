"""End to end: the gateway and the stand-in upstream run as real uvicorn servers on 127.0.0.1,
and real HTTP requests go through them: first one gateway process, then four uvicorn workers
sharing the vault file. The servers are stopped by their PIDs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import nanu

HERE = Path(__file__).resolve().parent
TRACE = HERE.parents[2] / "shared" / "data" / "azure-llm-trace-2023-conv.csv"
PRICES = HERE.parents[2] / "shared" / "data" / "litellm-model-prices-1.110.2.json"
ADMIN = "admin-token-for-tests"
PASSPHRASE = "gateway test passphrase"
WORKERS = 4
FLAT = "flat-model"
"""A model priced per request only, so that every request costs the same."""
CENT = 10_000


def trace_rows(n: int) -> list[tuple[int, int]]:
    lines = TRACE.read_text().splitlines()[1 : n + 1]
    return [(int(line.split(",")[1]), int(line.split(",")[2])) for line in lines]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *args, "--host", "127.0.0.1", "--port", str(port)],
        cwd=HERE,
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{args[0]} exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"{args[0]} did not listen on {port}: {log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def wait_for_workers(process: subprocess.Popen[bytes], log: Path, count: int) -> None:
    """Waits until `count` uvicorn workers have run their startup (opened the vault)."""
    deadline = time.monotonic() + 60
    while log.read_text().count("Application startup complete.") < count:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"the {count} workers did not start: {log.read_text()}")
        time.sleep(0.05)


@dataclass
class Servers:
    url: str
    upstream_url: str
    vault_path: Path
    gateway: subprocess.Popen[bytes]
    log: Path


def run_servers(tmp_path: Path, vault_path: Path, workers: int) -> Iterator[Servers]:
    """The upstream, and the gateway with `workers` uvicorn worker processes (the shared mode
    when there are several) in front of it."""
    upstream_port, gateway_port = free_port(), free_port()
    upstream = start(["upstream:app"], {"TRACE_CSV": str(TRACE)}, upstream_port,
                     tmp_path / "upstream.log")
    try:
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        env = {
            "NANU_VAULT": str(vault_path),
            "NANU_PASSPHRASE": PASSPHRASE,
            "UPSTREAM_URL": upstream_url,
            "NANU_ADMIN_TOKEN": ADMIN,
        }
        args = ["--factory", "gateway:app_from_environment"]
        if workers > 1:
            env["NANU_CONCURRENCY"] = "shared"
            args += ["--workers", str(workers)]
        log = tmp_path / "gateway.log"
        gateway = start(args, env, gateway_port, log)
        try:
            if workers > 1:
                wait_for_workers(gateway, log, workers)
            yield Servers(f"http://127.0.0.1:{gateway_port}", upstream_url, vault_path,
                          gateway, log)
        finally:
            stop(gateway)
    finally:
        stop(upstream)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    vault_path = tmp_path / "gateway.vault"
    with nanu.Vault.create(vault_path, passphrase=PASSPHRASE,
                           kdf=nanu.KdfParams.INSECURE_FOR_TESTS) as vault:
        vault.import_prices(PRICES)
        vault.set_price("fail-upstream", nanu.Price(1_000_000, 2_000_000))
    yield from run_servers(tmp_path, vault_path, workers=1)


@pytest.fixture
def shared_servers(tmp_path: Path) -> Iterator[Servers]:
    vault_path = tmp_path / "shared.vault"
    with nanu.Vault.create(vault_path, passphrase=PASSPHRASE,
                           kdf=nanu.KdfParams.INSECURE_FOR_TESTS) as vault:
        vault.set_price(FLAT, nanu.Price(per_request=CENT))
    yield from run_servers(tmp_path, vault_path, workers=WORKERS)


def mint(client: httpx.Client, **spec: object) -> tuple[str, str]:
    answer = client.post("/admin/keys", json=spec, headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return body["key_id"], body["secret"]


def chat(client: httpx.Client, secret: str | None, model: str = "gpt-4o",
         **extra: object) -> httpx.Response:
    headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
    return client.post("/v1/chat/completions", headers=headers,
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                             **extra})


def admin_get(client: httpx.Client, path: str) -> Any:
    answer = client.get(path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_gateway_end_to_end(servers: Servers) -> None:
    rows = trace_rows(200)
    served = 0  # upstream rows consumed, in order
    with httpx.Client(base_url=servers.url, timeout=30) as client:
        # No key, a garbage key.
        answer = chat(client, None)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "missing_key"
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        answer = chat(client, "nanu_live_not-a-key")
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "malformed"

        # A good key: the upstream's real token counts are charged, priced from LiteLLM.
        key_id, secret = mint(client, owner="acme", models=["gpt-4o", "fail-upstream"],
                              limits=["cost=$100/month", "requests=1000/min"])
        answer = chat(client, secret, max_tokens=256, **{"user": "u1"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == rows[0]
        served += 1
        expected_cost = -(-(rows[0][0] * 2_500_000 + rows[0][1] * 10_000_000) // 1_000_000)
        assert answer.headers["X-Nanu-Cost"] == str(expected_cost)
        assert answer.headers["X-Nanu-Key"] == key_id
        assert len(answer.headers["X-Request-Id"]) == 32

        # A request id is charged once: reused for another request, the gateway says so.
        statuses = []
        for _ in range(2):
            answer = client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {secret}", "X-Request-Id": "fixed-1"},
                json={"model": "gpt-4o"},
            )
            statuses.append(answer.status_code)
        assert statuses == [200, 409]
        assert answer.json()["error"]["code"] == "conflict"
        served += 2
        charged_once = 2

        # Wrong model, wrong address: 403.
        answer = chat(client, secret, model="claude-3-opus")
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "model_denied"
        _, office_only = mint(client, owner="acme", ips=["10.0.0.0/8"])
        answer = chat(client, office_only)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "ip_denied"

        # The upstream fails: 502, nothing charged, the hold given back.
        before = admin_get(client, f"/admin/keys/{key_id}/remaining")
        answer = chat(client, secret, model="fail-upstream", max_tokens=1000)
        assert answer.status_code == 502
        after = admin_get(client, f"/admin/keys/{key_id}/remaining")
        assert after["cost"] == before["cost"]
        assert after["requests"] == before["requests"] - 1

        # A rate limit: 429 with Retry-After.
        _, limited = mint(client, owner="beta", limits=["requests=2/min"])
        assert chat(client, limited).status_code == 200
        assert chat(client, limited).status_code == 200
        served += 2
        answer = chat(client, limited)
        assert answer.status_code == 429
        assert answer.json()["error"]["code"] == "rate_limited"
        assert answer.headers["Retry-After"] == "30"

        # A budget that runs out: 429 budget_exceeded, and the charges add up to the real
        # token counts of the trace rows served.
        budget_id, budget = mint(client, owner="gamma", limits=["cost=$0.02"])
        costs = []
        for _ in range(100):
            answer = chat(client, budget)
            if answer.status_code != 200:
                break
            costs.append(int(answer.headers["X-Nanu-Cost"]))
        assert answer.status_code == 429, answer.text
        assert answer.json()["error"]["code"] == "budget_exceeded"
        assert int(answer.headers["Retry-After"]) >= 1
        assert sum(costs) >= 20_000 > sum(costs[:-1])
        budget_rows = rows[served : served + len(costs)]
        served += len(costs)
        usage = admin_get(client, "/admin/usage?group_by=key")
        (row,) = [r for r in usage if r["group"]["key"] == budget_id]
        assert row["requests"] == len(costs) and row["cost"] == sum(costs)
        assert row["input_tokens"] == sum(i for i, _ in budget_rows)
        assert row["output_tokens"] == sum(o for _, o in budget_rows)
        assert row["denied"] == 1

        # A key revoked while the server runs is refused by the next request.
        assert chat(client, secret).status_code == 200
        served += 1
        answer = client.post("/admin/revoke", json={"key_id": key_id})
        assert answer.status_code == 401  # the admin token is required
        answer = client.post("/admin/revoke", json={"key_id": key_id},
                             headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 200
        answer = chat(client, secret)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "revoked"
        answer = client.post("/admin/revoke", json={"key_id": "key_missing"},
                             headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 404

        # Alerts reached the subscription callback.
        kinds = {(a["kind"], a["key_id"]) for a in admin_get(client, "/admin/alerts")}
        assert ("exhausted", budget_id) in kinds and ("revoked", key_id) in kinds

    # A clean stop closes the vault; everything is in the file.
    stop(servers.gateway)
    assert servers.gateway.returncode == 0, servers.log.read_text()
    with nanu.Vault.open(servers.vault_path, passphrase=PASSPHRASE) as vault:
        (total,) = vault.usage()
        assert total.requests == served - (charged_once - 1)
        assert vault.get(key_id).status == "revoked"
        actions = [(r.action, r.actor) for r in vault.audit(limit=1000)]
        assert ("revoke", "admin") in actions
        assert vault.verify_audit().ok


async def burst(url: str, secret: str, count: int) -> list[httpx.Response]:
    """`count` requests at once, each on a connection of its own, so that the kernel hands
    them to whichever worker accepts first."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        body = {"model": FLAT, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {secret}"}
        return await asyncio.gather(
            *(client.post("/v1/chat/completions", json=body, headers=headers)
              for _ in range(count))
        )


def test_four_workers_keep_one_budget_exact(shared_servers: Servers) -> None:
    """Four uvicorn workers open the vault in the shared mode. A budget of 40 requests' worth
    admits exactly 40 of 100 concurrent requests, whichever workers take them; a key minted
    and then revoked through one worker is served, then refused, by all; and the vault's
    totals are what the upstream served."""
    with httpx.Client(base_url=shared_servers.url, timeout=30) as client:
        key_id, secret = mint(client, owner="acme", models=[FLAT], limits=["cost=$0.40"])

    answers = asyncio.run(burst(shared_servers.url, secret, 100))
    allowed = [a for a in answers if a.status_code == 200]
    denied = [a for a in answers if a.status_code != 200]
    assert len(allowed) == 40, [a.status_code for a in answers]
    assert all(a.headers["X-Nanu-Cost"] == str(CENT) for a in allowed)
    assert {(a.status_code, a.json()["error"]["code"]) for a in denied} == {
        (429, "budget_exceeded")
    }
    workers = {a.headers["X-Gateway-Worker"] for a in allowed}
    assert len(workers) > 1, "one worker served every request: nothing was shared"

    with httpx.Client(base_url=shared_servers.url, timeout=30) as client:
        other_id, other = mint(client, owner="beta", models=[FLAT])
        served = asyncio.run(burst(shared_servers.url, other, 8))
        assert [a.status_code for a in served] == [200] * 8
        answer = client.post("/admin/revoke", json={"key_id": other_id},
                             headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 200
        refused = asyncio.run(burst(shared_servers.url, other, 8))
        assert {(a.status_code, a.json()["error"]["code"]) for a in refused} == {
            (401, "revoked")
        }
        stats = client.get(f"{shared_servers.upstream_url}/stats").json()
    assert stats["completions"] == 48

    stop(shared_servers.gateway)
    assert shared_servers.gateway.returncode == 0, shared_servers.log.read_text()
    with nanu.Vault.open(shared_servers.vault_path, passphrase=PASSPHRASE) as vault:
        (total,) = vault.usage()
        assert total.requests == stats["completions"]
        assert total.input_tokens == stats["prompt_tokens"]
        assert total.output_tokens == stats["completion_tokens"]
        assert total.cost == 48 * CENT
        (row,) = vault.usage(key_id=key_id)
        assert (row.requests, row.cost) == (40, 400_000)
        assert vault.remaining(key_id).cost == 0
        assert vault.get(other_id).status == "revoked"

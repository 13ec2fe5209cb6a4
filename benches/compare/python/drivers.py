"""The Python side of the comparison: one implementation at one configuration per process.

    python drivers.py WORKLOAD.json IMPL CONFIG [--verify] [--port N] [--dir DIR]
                      [--user NAME] [--sql DIR] [--lua DIR]

IMPL and CONFIG: `nanu` durable|process|relaxed, `sqlite` NORMAL|FULL (the `synchronous`
pragma, WAL mode), `redis` everysec|always (the server's appendfsync, set by run.sh; the
driver only checks it), `postgres` on|off (synchronous_commit, set for the session).

Loads the workload's keys into a fresh store, runs the untimed warm-up, then times each
verify+charge of `charge_ops` one by one, and with `--verify` each verify of `verify_ops`.
Prints one JSON line per timed run. Every operation of the workload must be allowed; a
denial means the implementations no longer do the same work, and the driver fails.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
LEVELS = {
    ("nanu", "durable"): "durable", ("nanu", "process"): "process",
    ("nanu", "relaxed"): "relaxed",
    ("sqlite", "FULL"): "durable", ("sqlite", "NORMAL"): "process",
    ("redis", "always"): "durable", ("redis", "everysec"): "process",
    ("postgres", "on"): "durable", ("postgres", "off"): "process",
}


def named_blocks(path: Path) -> dict[str, str]:
    """The `-- name: X` blocks of a SQL file."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-- name:"):
            current = blocks.setdefault(line.split(":", 1)[1].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in blocks.items()}


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Store(Protocol):
    def verify(self, i: int) -> bool: ...
    def verify_charge(self, i: int, cost: int) -> bool: ...
    def client(self) -> str: ...
    def close(self) -> None: ...


class Nanu:
    """nanu in this process: verify, then charge the key the verdict names."""

    def __init__(self, workload: dict[str, Any], level: str, directory: Path) -> None:
        import nanu

        self.vault = nanu.Vault.create(
            directory / f"compare-{level}.vault", passphrase="compare",
            kdf=nanu.KdfParams.INSECURE_FOR_TESTS, durability=level,  # type: ignore[arg-type]
        )
        limits = [f"cost={workload['budget']}u", f"requests={workload['rate']}/min"]
        assert workload["per_ms"] == 60_000, "nanu's limits above are written per minute"
        minted = self.vault.mint_many(
            [{"owner": f"user-{i}", "limits": limits} for i in range(workload["keys"])]
        )
        self.secrets = [m.secret for m in minted]
        self._verify = self.vault.verify
        self._charge = self.vault.charge

    def verify(self, i: int) -> bool:
        return self._verify(self.secrets[i]).allowed

    def verify_charge(self, i: int, cost: int) -> bool:
        verdict = self._verify(self.secrets[i])
        key_id = verdict.key_id
        if not verdict.allowed or key_id is None:
            return False
        self._charge(key_id, cost=cost)
        return True

    def client(self) -> str:
        import nanu

        return f"nanu {nanu.__version__}"

    def close(self) -> None:
        self.vault.close()


class Sqlite:
    """A table of hashed keys; verify+charge is one BEGIN IMMEDIATE transaction."""

    def __init__(self, workload: dict[str, Any], synchronous: str, directory: Path,
                 sql: dict[str, str]) -> None:
        import sqlite3

        path = directory / f"compare-{synchronous}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        # isolation_level=None: the driver writes its own BEGIN and COMMIT.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        assert self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute(sql["schema"])
        at = now_ms()
        rate, per_ms, budget = workload["rate"], workload["per_ms"], workload["budget"]
        self.db.execute("BEGIN")
        self.db.executemany(sql["insert"], (
            (digest(s), f"key_{i}", budget, rate, per_ms, rate, at)
            for i, s in enumerate(workload["secrets"])
        ))
        self.db.execute("COMMIT")
        self.secrets = workload["secrets"]
        self.sql = sql

    def verify(self, i: int) -> bool:
        row = self.db.execute(self.sql["verify"], (digest(self.secrets[i]),)).fetchone()
        return row is not None and row[1] == "active" and row[3] < row[2]

    def verify_charge(self, i: int, cost: int) -> bool:
        key = digest(self.secrets[i])
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            allowed = self._check_and_charge(key, cost)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return allowed

    def _check_and_charge(self, key: bytes, cost: int) -> bool:
        row = self.db.execute(self.sql["select_for_charge"], (key,)).fetchone()
        if row is None or row[1] != "active" or row[3] >= row[2]:
            return False
        _, _, _, _, rate, per_ms, tokens, at_ms = row
        at = now_ms()
        bucket = min(rate, tokens + max(at - at_ms, 0) * rate / per_ms)
        if bucket < 1:
            return False
        self.db.execute(self.sql["charge"], (cost, bucket - 1, at, key))
        return True

    def client(self) -> str:
        import sqlite3

        return f"sqlite3 module, SQLite {sqlite3.sqlite_version}"

    def close(self) -> None:
        self.db.close()


class Redis:
    """Keys as hashes named by the digest; verify+charge is one EVALSHA."""

    def __init__(self, workload: dict[str, Any], appendfsync: str, port: int,
                 script: str) -> None:
        import redis

        self.r = redis.Redis(host="127.0.0.1", port=port)
        configured = self.r.config_get("appendfsync")["appendfsync"]
        assert configured == appendfsync, f"server runs appendfsync {configured}"
        self.r.flushall()
        at = now_ms()
        pipe = self.r.pipeline(transaction=False)
        for i, secret in enumerate(workload["secrets"]):
            pipe.hset(f"key:{digest(secret).hex()}", mapping={
                "key_id": f"key_{i}", "status": "active", "budget": workload["budget"],
                "spent": 0, "rate": workload["rate"], "per_ms": workload["per_ms"],
                "tokens": workload["rate"], "at_ms": at,
            })
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        self.sha = self.r.script_load(script)
        self.secrets = workload["secrets"]

    def verify(self, i: int) -> bool:
        name = f"key:{digest(self.secrets[i]).hex()}"
        key_id, status, budget, spent = self.r.hmget(name, "key_id", "status", "budget",
                                                     "spent")
        return (key_id is not None and status == b"active"
                and int(spent or 0) < int(budget or 0))

    def verify_charge(self, i: int, cost: int) -> bool:
        name = f"key:{digest(self.secrets[i]).hex()}"
        return self.r.evalsha(self.sha, 1, name, cost)[0] == 1

    def client(self) -> str:
        import redis

        server = self.r.info("server")["redis_version"]
        parser = "hiredis" if redis.utils.HIREDIS_AVAILABLE else "Python parser"
        return f"redis-py {redis.__version__} ({parser}), Redis {server}"

    def close(self) -> None:
        self.r.close()


class Postgres:
    """The table and plpgsql function of sql/postgres.sql, one prepared call per operation."""

    def __init__(self, workload: dict[str, Any], sync: str, port: int, user: str,
                 sql: dict[str, str]) -> None:
        import psycopg

        self.conn = psycopg.connect(host="127.0.0.1", port=port, user=user,
                                    dbname="postgres", autocommit=True)
        self.conn.execute(f"SET synchronous_commit = {sync}")
        self.conn.execute(sql["schema"])
        at = now_ms()
        columns = "digest, key_id, status, budget, spent, rate, per_ms, tokens, at_ms"
        with (self.conn.transaction(), self.conn.cursor() as cur,
              cur.copy(f"COPY keys ({columns}) FROM STDIN") as copy):
            for i, secret in enumerate(workload["secrets"]):
                copy.write_row((digest(secret), f"key_{i}", "active", workload["budget"], 0,
                                workload["rate"], workload["per_ms"], workload["rate"], at))
        self.conn.execute("ANALYZE keys")
        self.cur = self.conn.cursor()
        # psycopg writes %s placeholders and turns them into $n itself.
        self.verify_sql = sql["verify"].replace("$1", "%s")
        self.charge_sql = sql["verify_charge"].replace("$1", "%s").replace("$2", "%s")
        self.secrets = workload["secrets"]

    def verify(self, i: int) -> bool:
        row = self.cur.execute(self.verify_sql, (digest(self.secrets[i]),),
                               prepare=True).fetchone()
        return row is not None and row[1] == "active" and row[3] < row[2]

    def verify_charge(self, i: int, cost: int) -> bool:
        row = self.cur.execute(self.charge_sql, (digest(self.secrets[i]), cost),
                               prepare=True).fetchone()
        return row is not None and row[0]

    def client(self) -> str:
        import psycopg

        server = self.conn.info.server_version
        return (f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), "
                f"PostgreSQL {server // 10000}.{server % 10000}")

    def close(self) -> None:
        self.conn.close()


def timed(ops: list[Any], call: Callable[[Any], bool]) -> tuple[list[int], int, int]:
    """Per-call nanoseconds, the whole loop's nanoseconds, and how many calls were allowed."""
    clock = time.perf_counter_ns
    samples = [0] * len(ops)
    allowed = 0
    gc.disable()
    try:
        begin = clock()
        for n, op in enumerate(ops):
            start = clock()
            allowed += call(op)
            samples[n] = clock() - start
        total = clock() - begin
    finally:
        gc.enable()
    return samples, total, allowed


def report(impl: str, config: str, client: str, workload: str, ops: list[Any],
           call: Callable[[Any], bool]) -> None:
    samples, total, allowed = timed(ops, call)
    if allowed != len(ops):
        raise SystemExit(f"{impl} {config} {workload}: {len(ops) - allowed} of {len(ops)} "
                         "operations were denied; the workload should allow them all")
    samples.sort()
    n = len(samples)
    print(json.dumps({
        "kind": "result", "lang": "python", "impl": impl, "config": config,
        "level": LEVELS[(impl, config)], "workload": workload, "n": n,
        "p50_ns": samples[n // 2], "p99_ns": samples[min(n - 1, n * 99 // 100)],
        "ops_per_s": n * 1e9 / total, "client": client,
        "python": platform.python_version(),
    }), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload")
    parser.add_argument("impl", choices=["nanu", "sqlite", "redis", "postgres"])
    parser.add_argument("config")
    parser.add_argument("--verify", action="store_true", help="also time verify alone")
    parser.add_argument("--port", type=int)
    parser.add_argument("--user", default="nanubench")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    parser.add_argument("--sql", type=Path, default=HERE.parent / "sql")
    parser.add_argument("--lua", type=Path, default=HERE.parent / "redis")
    args = parser.parse_args()
    if (args.impl, args.config) not in LEVELS:
        parser.error(f"no configuration {args.config!r} for {args.impl}")

    with open(args.workload, encoding="utf-8") as f:
        workload = json.load(f)
    store: Store
    if args.impl == "nanu":
        store = Nanu(workload, args.config, args.dir)
    elif args.impl == "sqlite":
        store = Sqlite(workload, args.config, args.dir, named_blocks(args.sql / "sqlite.sql"))
    elif args.impl == "redis":
        script = (args.lua / "verify_charge.lua").read_text(encoding="utf-8")
        store = Redis(workload, args.config, args.port, script)
    else:
        store = Postgres(workload, args.config, args.port, args.user,
                         named_blocks(args.sql / "postgres.sql"))

    try:
        for i, cost in workload["warmup_ops"]:
            store.verify_charge(i, cost)
        client = store.client()
        report(args.impl, args.config, client, "verify_charge", workload["charge_ops"],
               lambda op: store.verify_charge(op[0], op[1]))
        if args.verify:
            for i, _ in workload["warmup_ops"]:
                store.verify(i)
            report(args.impl, args.config, client, "verify", workload["verify_ops"], store.verify)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Latency of verify and verify+charge from Python, at each durability level.

Measures, with time.perf_counter_ns around each call, in one thread:

- verify of a valid key with three limits (requests per minute, rolling; tokens per
  calendar day; cost per calendar month) and a model check;
- verify followed by charge (real tokens, priced from the price table, a request id) at the
  durable, process and relaxed levels.

Run it against a release build of the wheel:

    cd python && maturin build --release -o ../target/wheels-release
    python3 -m venv /tmp/nanu-bench
    /tmp/nanu-bench/bin/pip install ../target/wheels-release/nanu-*.whl
    /tmp/nanu-bench/bin/python ../benches/python/bench_verify.py

The p50 and p99 include the cost of reading the clock (printed as "timer").
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nanu

LIMITS = ["requests=1T/min", "tokens=1000T/day", "cost=$1000000000/month"]
MODEL = "gpt-4o"
PRICE = nanu.Price(input_per_mtok=2_500_000, output_per_mtok=10_000_000)


def percentiles(samples: list[int]) -> tuple[int, int, float]:
    samples.sort()
    n = len(samples)
    return samples[n // 2], samples[min(n - 1, n * 99 // 100)], sum(samples) / n


def timed(n: int, call: Callable[[int], object]) -> list[int]:
    clock = time.perf_counter_ns
    samples = [0] * n
    gc.disable()
    try:
        for i in range(n):
            start = clock()
            call(i)
            samples[i] = clock() - start
    finally:
        gc.enable()
    return samples


def open_vault(directory: Path, durability: str) -> tuple[nanu.Vault, nanu.Minted]:
    vault = nanu.Vault.create(
        directory / f"{durability}.vault",
        passphrase="bench",
        kdf=nanu.KdfParams.INSECURE_FOR_TESTS,
        durability="relaxed" if durability == "verify" else durability,  # type: ignore[arg-type]
    )
    vault.set_price(MODEL, PRICE)
    key = vault.mint("bench", models=[MODEL], limits=LIMITS)
    return vault, key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000,
                        help="calls per measurement (default 200000)")
    parser.add_argument("--durable-calls", type=int, default=2_000,
                        help="verify+charge calls at the durable level (default 2000)")
    args = parser.parse_args()

    rows: list[tuple[str, str, int, tuple[int, int, float]]] = []
    timer = timed(args.calls, lambda i: None)
    rows.append(("timer (empty)", "-", args.calls, percentiles(timer)))

    with tempfile.TemporaryDirectory(prefix="nanu-bench-") as tmp:
        directory = Path(tmp)
        vault, key = open_vault(directory, "verify")
        secret = key.secret
        verify = vault.verify
        for _ in range(20_000):  # warm the caches and the branch predictors
            verify(secret, model=MODEL)
        samples = timed(args.calls, lambda i: verify(secret, model=MODEL))
        assert verify(secret, model=MODEL).allowed
        rows.append(("verify (3 limits, model)", "-", args.calls, percentiles(samples)))
        vault.close()

        for level, n in (("durable", args.durable_calls), ("process", args.calls),
                         ("relaxed", args.calls)):
            vault, key = open_vault(directory, level)
            secret, key_id = key.secret, key.key_id
            verify, charge = vault.verify, vault.charge
            ids = [f"req-{i}" for i in range(n + 1000)]

            def pair(i: int) -> None:
                verdict = verify(secret, model=MODEL)
                charge(key_id, model=MODEL, input_tokens=812, output_tokens=203,
                       request_id=ids[i])
                assert verdict.allowed

            for i in range(min(1000, n)):
                pair(n + i)  # warm-up with request ids outside the measured range
            samples = timed(n, pair)
            rows.append(("verify+charge", level, n, percentiles(samples)))
            vault.close()

    print(f"nanu {nanu.__version__}, Python {platform.python_version()} "
          f"({platform.python_implementation()}), {platform.machine()}, "
          f"{os.cpu_count()} cpus, {platform.platform()}")
    print(f"{'operation':<26} {'level':<8} {'calls':>8} {'p50 us':>9} {'p99 us':>9} "
          f"{'mean us':>9} {'calls/s':>10}")
    for name, level, n, (p50, p99, mean) in rows:
        per_second = 1e9 / mean if mean else float("inf")
        print(f"{name:<26} {level:<8} {n:>8} {p50 / 1000:>9.3f} {p99 / 1000:>9.3f} "
              f"{mean / 1000:>9.3f} {per_second:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

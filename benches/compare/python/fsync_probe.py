"""Latency of a small write followed by a flush to disk, on a file in the given directory.

    python fsync_probe.py DIR [--count 300]

Prints one JSON line with two measurements, since a file system flushes them at very
different costs:

- `append`: a 64-byte write at the end of a growing file, then fsync. The file's size
  changes, so the file system commits its own journal too (as for a journal file that grows,
  or a database file that grows).
- `overwrite`: a 64-byte write inside a preallocated, already flushed 1 MiB file, then
  fdatasync. Only the data block is flushed (as for SQLite's WAL once it is reused after a
  checkpoint, or a preallocated log).

Every `durable` row of the comparison (nanu durable, SQLite FULL, Redis appendfsync always,
PostgreSQL synchronous_commit on) waits for at least one such flush per charge, so these are
the floors those rows stand on, measured on the same disk in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

BLOCK = b"x" * 64
PREALLOCATED = 1 << 20


def percentiles(samples: list[int]) -> dict[str, int]:
    samples.sort()
    n = len(samples)
    return {"p50_ns": samples[n // 2], "p99_ns": samples[min(n - 1, n * 99 // 100)]}


def measure(count: int, step: Callable[[int], None]) -> dict[str, int]:
    samples = []
    for i in range(count):
        start = time.perf_counter_ns()
        step(i)
        samples.append(time.perf_counter_ns() - start)
    return percentiles(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()

    path = os.path.join(args.dir, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        def append(_: int) -> None:
            os.write(fd, BLOCK)
            os.fsync(fd)

        grown = measure(args.count, append)

        os.ftruncate(fd, 0)
        os.pwrite(fd, b"\0" * PREALLOCATED, 0)
        os.fsync(fd)

        def overwrite(i: int) -> None:
            os.pwrite(fd, BLOCK, (i * 4096) % PREALLOCATED)
            os.fdatasync(fd)

        in_place = measure(args.count, overwrite)
    finally:
        os.close(fd)
        os.unlink(path)
    print(json.dumps({"kind": "fsync", "count": args.count, "append": grown,
                      "overwrite": in_place}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

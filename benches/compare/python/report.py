"""Turns the drivers' JSON lines into the comparison's Markdown tables.

    python report.py RESULTS.jsonl --machine FILE --load-start "1 5 15" --load-end "1 5 15"
                     --cpu N --workload TEXT --out FILE

Prints the tables and writes them, with the date, the machine and the load average, to
--out. Each peer is compared with the nanu row of the same language at the same durability
level: `process` with SQLite synchronous=NORMAL, Redis appendfsync everysec and PostgreSQL
synchronous_commit=off; `durable` with SQLite FULL, Redis always and synchronous_commit=on.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NAMES = {
    ("nanu", "process"): "nanu",
    ("nanu", "durable"): "nanu",
    ("nanu", "relaxed"): "nanu",
    ("sqlite", "NORMAL"): "SQLite, synchronous=NORMAL",
    ("sqlite", "FULL"): "SQLite, synchronous=FULL",
    ("redis", "everysec"): "Redis+Lua, everysec",
    ("redis", "always"): "Redis+Lua, always",
    ("postgres", "off"): "Postgres, sync commit off",
    ("postgres", "on"): "Postgres, sync commit on",
}
VERIFY_NAMES = {
    "nanu": "nanu verify",
    "sqlite": "SQLite SELECT",
    "redis": "Redis HMGET",
    "postgres": "Postgres SELECT",
}
LEGEND = [
    ("nanu: `verify` then `charge` in the process. SQLite: a table of hashed keys in WAL mode, "
    "one BEGIN IMMEDIATE transaction (SELECT, check, UPDATE). Redis+Lua: one EVALSHA doing the "
    "check and the charge, with `appendfsync` everysec or always. Postgres: one prepared call "
    "of a plpgsql function, `synchronous_commit` off or on. Peers run on 127.0.0.1. From "
    "Node, nanu at `durable` is timed with `chargeAsync` (the fsync off the event loop), "
    "elsewhere with `charge`."),
    ("Verify alone: nanu runs every check and counts the request against the rate limit; the "
    "peers read the key by digest (SQLite SELECT, Redis HMGET, Postgres prepared SELECT) and "
    "check status and budget in the client."),
]
IMPL_ORDER = ["nanu", "sqlite", "redis", "postgres"]
LEVEL_ORDER = ["process", "durable", "relaxed"]
LANG_NAMES = {"python": "Python", "node": "Node"}
TARGETS = [("redis", 25.0), ("sqlite", 5.0)]


def wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, 100, initial_indent=indent,
                         subsequent_indent=" " * len(indent))


def micros(ns: float) -> str:
    us = ns / 1000
    if us < 10:
        return f"{us:.2f}"
    if us < 100:
        return f"{us:.1f}"
    return f"{us:,.0f}"


def times(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.1f}×" if ratio < 100 else f"{ratio:,.0f}×"


def table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if i in right else "---"
                               for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def ordered(results: list[dict[str, Any]], langs: list[str]) -> list[dict[str, Any]]:
    return sorted(results, key=lambda r: (langs.index(r["lang"]),
                                          LEVEL_ORDER.index(r["level"]),
                                          IMPL_ORDER.index(r["impl"])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--machine", type=Path, required=True)
    parser.add_argument("--load-start", required=True)
    parser.add_argument("--load-end", required=True)
    parser.add_argument("--cpu", required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    records = [json.loads(line) for line in args.results.read_text().splitlines() if line]
    results = [r for r in records if r["kind"] == "result"]
    fsync = next((r for r in records if r["kind"] == "fsync"), None)
    machine = dict(line.split("=", 1) for line in args.machine.read_text().splitlines())
    langs = [lang for lang in LANG_NAMES if any(r["lang"] == lang for r in results)]
    by_key = {(r["lang"], r["impl"], r["level"], r["workload"]): r for r in results}

    out = ["# nanu beside Redis, SQLite and PostgreSQL", ""]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = [
        f"Date: {now}.",
        (f"Machine: {machine['nproc']} cores (nproc), {machine['cpu']}, {machine['kernel']}, "
         f"{machine['os']}."),
        (f"Load average (1, 5, 15 min): {args.load_start} when the servers started, "
         f"{args.load_end} at the end."),
        (f"Workload: {args.workload}; one client thread; every client and server pinned to "
         f"CPU {args.cpu}."),
    ]
    if fsync:
        grown, in_place = fsync["append"], fsync["overwrite"]
        facts.append(
            f"Flush latency of the data disk ({fsync['count']} writes of 64 bytes each): "
            f"appended to a growing file + fsync, p50 {micros(grown['p50_ns'])} µs, p99 "
            f"{micros(grown['p99_ns'])} µs; overwritten in a preallocated file + fdatasync, "
            f"p50 {micros(in_place['p50_ns'])} µs, p99 {micros(in_place['p99_ns'])} µs.")
    for fact in facts:
        out += wrap(fact, "- ")
    out.append("")
    for paragraph in LEGEND:
        out += wrap(paragraph) + [""]

    out += ["## verify+charge", ""]
    out += wrap("Each operation verifies a random key, checks its budget and rate limit and "
                "charges a cost. Speed-up: how many times faster nanu is than the peer, "
                "against the nanu row of the same language and durability level (peer p50 / "
                "nanu p50, and nanu ops/s / peer ops/s).") + [""]
    rows = []
    for r in ordered([r for r in results if r["workload"] == "verify_charge"], langs):
        nanu = by_key.get((r["lang"], "nanu", r["level"], "verify_charge"))
        peer = r["impl"] != "nanu" and nanu is not None
        rows.append([
            LANG_NAMES[r["lang"]], f"`{r['level']}`", NAMES[(r["impl"], r["config"])],
            micros(r["p50_ns"]), micros(r["p99_ns"]), f"{r['ops_per_s']:,.0f}",
            times(r["p50_ns"] / nanu["p50_ns"] if peer and nanu else None),
            times(nanu["ops_per_s"] / r["ops_per_s"] if peer and nanu else None),
        ])
    out += table(["language", "level", "implementation", "p50 µs", "p99 µs", "ops/s",
                  "speed-up p50", "speed-up ops/s"], rows, {3, 4, 5, 6, 7})
    out.append("")

    out += ["## verify only", ""]
    out += wrap("Speed-up against nanu at `process` in the same language. A peer's verify is "
                "a read, the same at any durability setting; it was timed on the "
                "configuration matched with `process`.") + [""]
    rows = []
    for r in ordered([r for r in results if r["workload"] == "verify"], langs):
        nanu = by_key.get((r["lang"], "nanu", "process", "verify"))
        peer = r["impl"] != "nanu" and nanu is not None
        level = f"`{r['level']}`" if r["impl"] == "nanu" else r["config"]
        rows.append([
            LANG_NAMES[r["lang"]], VERIFY_NAMES[r["impl"]], level, micros(r["p50_ns"]),
            micros(r["p99_ns"]), f"{r['ops_per_s']:,.0f}",
            times(r["p50_ns"] / nanu["p50_ns"] if peer and nanu else None),
            times(nanu["ops_per_s"] / r["ops_per_s"] if peer and nanu else None),
        ])
    out += table(["language", "implementation", "setting", "p50 µs", "p99 µs", "ops/s",
                  "speed-up p50", "speed-up ops/s"], rows, {3, 4, 5, 6, 7})
    out.append("")

    out += ["## The targets of DESIGN.md", ""]
    out += wrap("verify+charge at `process` against the peers at the same level, from the "
                "same language, in this run. Met when both speed-ups reach the target.")
    out.append("")
    rows = []
    for lang in langs:
        nanu = by_key.get((lang, "nanu", "process", "verify_charge"))
        for impl, target in TARGETS:
            peer = by_key.get((lang, impl, "process", "verify_charge"))
            if not nanu or not peer:
                continue
            by_p50 = peer["p50_ns"] / nanu["p50_ns"]
            by_rate = nanu["ops_per_s"] / peer["ops_per_s"]
            met = "yes" if min(by_p50, by_rate) >= target else (
                "by one measure" if max(by_p50, by_rate) >= target else "no")
            rows.append([LANG_NAMES[lang], f"≥ {target:g}× {NAMES[(impl, peer['config'])]}",
                         times(by_p50), times(by_rate), met])
    out += table(["language", "target", "speed-up p50", "speed-up ops/s", "met"], rows,
                 {2, 3})
    out.append("")

    out += ["## Versions", ""]
    seen = set()
    for r in ordered(results, langs):
        runtime = f"Python {r['python']}" if r["lang"] == "python" else f"Node {r['node']}"
        line = f"- {runtime}: {r['client']}"
        if line not in seen:
            seen.add(line)
            out.append(line)

    text = "\n".join(out) + "\n"
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

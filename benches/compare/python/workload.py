"""Writes the workload every implementation runs, in both languages, as one JSON file.

    python workload.py OUT.json [--keys 10000] [--ops 20000] [--verifies 20000]
                                [--warmup 2000] [--seed 1]

Every key has the same two limits: a lifetime budget of `budget` micro-units and a token
bucket of `rate` requests per minute (burst `rate`). The peers' secrets are random strings of
the length of a nanu secret; nanu mints its own (it never stores or accepts a chosen secret),
and the drivers map key index i to the i-th key each implementation made.

`charge_ops` are (key index, cost) pairs for the verify+charge runs, `verify_ops` key indexes
for the verify-only runs, `warmup_ops` pairs run before either and not timed. Keys are drawn
uniformly, so with the defaults a key is charged about twice and never reaches a limit: the
runs measure the allowed path, the one a service takes on almost every request.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys

ALPHABET = string.ascii_letters + string.digits
SECRET_PREFIX = "peer_live_"
SECRET_BODY_LEN = 49  # a nanu secret is 59 characters: nanu_live_ + 43 + 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--verifies", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    secrets = [
        SECRET_PREFIX + "".join(rng.choices(ALPHABET, k=SECRET_BODY_LEN))
        for _ in range(args.keys)
    ]
    workload = {
        "keys": args.keys,
        "budget": 1_000_000_000,  # $1000 in micro-units
        "rate": 1_000,
        "per_ms": 60_000,
        "secrets": secrets,
        "warmup_ops": [[rng.randrange(args.keys), rng.randint(1, 50_000)]
                       for _ in range(args.warmup)],
        "charge_ops": [[rng.randrange(args.keys), rng.randint(1, 50_000)]
                       for _ in range(args.ops)],
        "verify_ops": [rng.randrange(args.keys) for _ in range(args.verifies)],
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(workload, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

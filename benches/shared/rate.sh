#!/usr/bin/env bash
# The verify rate of several processes on one vault file in the shared mode: builds
# `shared_rate` (release), creates a vault of 1,000 keys with three limits and every check,
# starts the processes together, each verifying the keys in turn on one thread for the same
# interval, and prints each one's count and the total verifies per second.
#
#   benches/shared/rate.sh                 # 4 processes, 5 seconds, 1,000 keys
#   benches/shared/rate.sh --procs 2 --seconds 10 --keys 10000
#
# Options: --procs N (4), --seconds S (5), --keys N (1000), --work DIR (a fresh temporary
# directory, removed at the end). The numbers depend on the machine's load; the design target
# is at least 200,000 verifies per second from four processes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROCS=4
SECONDS_EACH=5
KEYS=1000
WORK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --procs) PROCS=$2; shift 2 ;;
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --keys) KEYS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "rate.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$PROCS" in
    '' | *[!0-9]* | 0) echo "rate.sh: --procs must be a positive whole number" >&2; exit 2 ;;
esac

if [ -z "$WORK" ]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/nanu-shared-rate.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
else
    mkdir -p "$WORK"
fi

echo "rate.sh: building shared_rate (release)"
cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p nanu-benches \
    --bin shared_rate
target="${CARGO_TARGET_DIR:-$ROOT/target}"
bin="$target/release/shared_rate"

vault="$WORK/rate.vault"
rm -f "$vault" "$vault".*
"$bin" setup "$vault" "$KEYS"

# Every process opens the vault and verifies each key once, then waits for the common start:
# two seconds from now leaves time for the opens.
start_ms=$(( $(date +%s%3N) + 2000 ))
pids=()
for i in $(seq 1 "$PROCS"); do
    "$bin" run "$vault" "$start_ms" "$SECONDS_EACH" >"$WORK/out.$i" &
    pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
[ "$failed" -eq 0 ] || { echo "rate.sh: a process failed" >&2; exit 1; }

# Each line: "verified COUNT in SECONDS s". The processes ran over the same interval, so the
# total rate is the sum of their rates.
for i in $(seq 1 "$PROCS"); do
    sed "s/^/process $i: /" "$WORK/out.$i"
done
cat "$WORK"/out.* | awk -v procs="$PROCS" '
    { count += $2; rate += $2 / $4 }
    END {
        printf "%d processes: %d verifies, %.0f verifies/s in total\n", procs, count, rate
    }'

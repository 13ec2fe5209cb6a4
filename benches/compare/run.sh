#!/usr/bin/env bash
# The side-by-side comparison: nanu against Redis+Lua, a hand-written SQLite table and
# PostgreSQL, from Python and from Node, on this machine, in one run. See README.md.
#
#   benches/compare/run.sh            # the full comparison; writes benches/compare/results.md
#   benches/compare/run.sh --quick    # small sizes, to check the setup; writes under --work
#
# Options: --keys N (10000), --ops N (20000 verify+charge), --verifies N (20000),
# --warmup N (2000), --langs "python node", --cpu N (0: the core every client and server is
# pinned to), --work DIR (/tmp/nanu-compare: venv, node project, data, servers' files),
# --out FILE. It installs what it needs (Debian packages, a venv, a Node project), starts
# Redis and PostgreSQL on 127.0.0.1 only, and stops them by PID on exit. It is not part of
# CI or test.sh: it takes several minutes and its numbers depend on the machine's load.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KEYS=10000
OPS=20000
VERIFIES=20000
WARMUP=2000
LANGS="python node"
CPU=0
WORK=/tmp/nanu-compare
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --keys) KEYS=$2; shift 2 ;;
        --ops) OPS=$2; shift 2 ;;
        --verifies) VERIFIES=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --langs) LANGS=$2; shift 2 ;;
        --cpu) CPU=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --quick) KEYS=1000; OPS=1000; VERIFIES=1000; WARMUP=200; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
# Only a run of the full workload replaces the results kept in the repository.
if [ -z "$OUT" ]; then
    if [ "$KEYS/$OPS/$VERIFIES/$WARMUP" = "10000/20000/20000/2000" ]; then
        OUT=$HERE/results.md
    else
        OUT=$WORK/results.md
    fi
fi

say() { printf '\n== %s\n' "$*" >&2; }
PIN=(taskset -c "$CPU")
mkdir -p "$WORK"
chmod 755 "$WORK"
VENV=$WORK/venv
DATA=$WORK/data
RESULTS=$WORK/results.jsonl

# Servers started below, stopped by PID whatever happens.
REDIS_PIDS=()
PG_DATA=""
PG_PID=""
cleanup() {
    local pid
    for pid in "${REDIS_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${REDIS_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_PID" ]; then
        # SIGINT is PostgreSQL's fast shutdown; the loop waits for the postmaster to go.
        kill -INT "$PG_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$PG_PID" 2>/dev/null || break
            sleep 0.1
        done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

install_debian() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
    # better-sqlite3 compiles its addon (with its own SQLite) with node-gyp.
    command -v g++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

install_python() {
    say "Python: venv, clients, nanu wheel (release)"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade 'redis[hiredis]' 'psycopg[binary]' 'maturin>=1.5'
    rm -rf "$WORK/wheels"
    # A target folder of its own keeps this release build off the workspace's build lock.
    (cd "$ROOT/python" && CARGO_TARGET_DIR=$WORK/target \
        "$VENV/bin/maturin" build --release --quiet -o "$WORK/wheels")
    "$VENV/bin/pip" install -q --force-reinstall --no-deps "$WORK"/wheels/nanu-*.whl
}

install_node() {
    say "Node: nanu tarball (release build), redis, pg, better-sqlite3@12"
    local project=$WORK/node tarball sum
    mkdir -p "$project"
    rm -f "$WORK"/nanu-*.tgz
    (cd "$ROOT/node" && npm pack --silent --pack-destination "$WORK" >/dev/null)
    tarball=$(ls "$WORK"/nanu-*.tgz)
    sum=$(sha256sum "$tarball" | cut -d' ' -f1)
    # allowScripts: npm 11 runs a dependency's install script only when the project allows
    # it; both of these compile their native addon in it.
    cat >"$project/package.json" <<'JSON'
{
  "name": "nanu-compare",
  "private": true,
  "allowScripts": { "better-sqlite3": true, "nanu": true }
}
JSON
    # The nanu install compiles the addon (minutes): skip it when the tarball is unchanged.
    if [ "$(cat "$project/.nanu-tarball" 2>/dev/null)" != "$sum" ] ||
        [ ! -d "$project/node_modules/nanu" ]; then
        # better-sqlite3 13 needs Node 22; nodedir points node-gyp at the installed headers.
        (cd "$project" && npm_config_nodedir=/usr npm install --no-audit --no-fund \
            redis@5 pg@8 better-sqlite3@12 "$tarball" >/dev/null)
        echo "$sum" >"$project/.nanu-tarball"
    fi
}

start_redis() {
    # $1: appendfsync policy; sets REDIS_PORT. RDB snapshots are off so that no background
    # save forks during a timed run; the AOF is the durability being compared.
    local policy=$1 dir=$WORK/redis-$1
    REDIS_PORT=$(free_port)
    rm -rf "$dir"
    mkdir -p "$dir"
    "${PIN[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
        --appendonly yes --appendfsync "$policy" --save '' --daemonize no \
        --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
    REDIS_PIDS+=($!)
    for _ in $(seq 100); do
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null
}

start_postgres() {
    # Sets PG_USER, PG_PORT, PG_PID. initdb refuses root: when run as root, the cluster
    # belongs to an unprivileged user, created if needed.
    local bin as_user=()
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    PG_USER=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        PG_USER=nanubench
        id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_USER"
        as_user=(runuser -u "$PG_USER" --)
    fi
    PG_DATA=$WORK/postgres
    rm -rf "$PG_DATA"
    mkdir -p "$PG_DATA"
    chown "$PG_USER" "$PG_DATA"
    chmod 700 "$PG_DATA"
    "${as_user[@]}" "$bin/initdb" -D "$PG_DATA" --auth=trust --username="$PG_USER" -E UTF8 \
        --no-instructions >/dev/null
    PG_PORT=$(free_port)
    # taskset pins pg_ctl, and so the postmaster and every backend it forks.
    "${PIN[@]}" "${as_user[@]}" "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_DATA" \
        start >/dev/null
    PG_PID=$(head -n1 "$PG_DATA/postmaster.pid")
}

machine() {
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -sr)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
}

install_debian
install_python
case " $LANGS " in *" node "*) install_node ;; esac

say "workload: $KEYS keys, $OPS verify+charge, $VERIFIES verifies, $WARMUP warm-up"
rm -rf "$DATA"
mkdir -p "$DATA"
: >"$RESULTS"
"$VENV/bin/python" "$HERE/python/workload.py" "$WORK/workload.json" --keys "$KEYS" \
    --ops "$OPS" --verifies "$VERIFIES" --warmup "$WARMUP"

say "servers on 127.0.0.1, pinned to CPU $CPU"
start_redis always
REDIS_ALWAYS=$REDIS_PORT
start_redis everysec
REDIS_EVERYSEC=$REDIS_PORT
start_postgres
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

say "fsync latency of the data disk"
"$VENV/bin/python" "$HERE/python/fsync_probe.py" "$DATA" >>"$RESULTS"

# Each line: implementation, configuration, extra arguments. verify alone is timed at the
# configurations matched with nanu's `process` level (a read does not depend on the
# durability setting), and for nanu at every level.
RUNS=(
    "nanu process --verify"
    "sqlite NORMAL --verify"
    "redis everysec --verify --port $REDIS_EVERYSEC"
    "postgres off --verify --port $PG_PORT --user $PG_USER"
    "nanu durable --verify"
    "sqlite FULL"
    "redis always --port $REDIS_ALWAYS"
    "postgres on --port $PG_PORT --user $PG_USER"
    "nanu relaxed --verify"
)
for lang in $LANGS; do
    for run in "${RUNS[@]}"; do
        say "$lang: $run"
        # shellcheck disable=SC2086 # each run line is split into its arguments on purpose
        case $lang in
            python)
                "${PIN[@]}" "$VENV/bin/python" "$HERE/python/drivers.py" "$WORK/workload.json" \
                    $run --dir "$DATA" | tee -a "$RESULTS" ;;
            node)
                "${PIN[@]}" node "$HERE/node/compare.mjs" "$WORK/workload.json" $run \
                    --dir "$DATA" --modules "$WORK/node" | tee -a "$RESULTS" ;;
            *) echo "run.sh: unknown language $lang" >&2; exit 2 ;;
        esac
        rm -f "$DATA"/compare-*
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

say "report"
machine >"$WORK/machine.txt"
"$VENV/bin/python" "$HERE/python/report.py" "$RESULTS" --machine "$WORK/machine.txt" \
    --load-start "$LOAD_START" --load-end "$LOAD_END" --cpu "$CPU" \
    --workload "$KEYS keys, $OPS verify+charge, $VERIFIES verifies, $WARMUP warm-up" \
    --out "$OUT"
echo "saved to $OUT" >&2

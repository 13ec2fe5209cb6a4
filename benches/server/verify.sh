#!/usr/bin/env bash
# Throughput and latency of `POST /v1/verify` on the admin server: a release build of `nanu
# serve` on 127.0.0.1 over a temporary vault, driven by wrk (2 threads, a few connections, 10 s)
# with a small Lua script that posts one customer key's secret with an admin key holding the
# `verify` scope. Each request verifies the admin key, then the customer key (three limits).
# Usage: benches/server/verify.sh [connections] [seconds]   (defaults: 8 10)
# NANU_CONCURRENCY=exclusive|shared picks the vault mode of the server (default shared).
set -euo pipefail
cd "$(dirname "$0")/../.."

connections="${1:-8}"
seconds="${2:-10}"
concurrency="${NANU_CONCURRENCY:-shared}"

if ! command -v wrk >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi

cargo build --release -p nanu-cli
nanu="$PWD/target/release/nanu"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

vault="$work/bench.vault"
python3 -c 'import secrets; print(secrets.token_hex(32))' > "$work/vault.key"
n() { "$nanu" --vault "$vault" --key-file "$work/vault.key" "$@"; }
secret_of() { python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])'; }

n init >/dev/null 2>&1
admin="$(n mint --owner ops --env admin --scope verify --json 2>/dev/null | secret_of)"
# Three limits far from their end, so that every verify is allowed and checks all three.
customer="$(n mint --owner acme --limit 'requests=1B/min' --limit 'tokens=1T/day' \
  --limit 'cost=$1M/month' --json 2>/dev/null | secret_of)"

# Every answer is checked: one that is not "200, allowed" is counted and reported, so that a
# fast run of errors cannot pass for a fast run of verifies.
cat > "$work/verify.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"secret": "$customer"}'
wrk.headers["Authorization"] = "Bearer $admin"
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  refused = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"allowed":true', 1, true) then
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("refused")
  end
  io.write(string.format("answers other than 200 allowed: %d\n", total))
end
LUA

"$nanu" --vault "$vault" --key-file "$work/vault.key" serve --listen 127.0.0.1:0 \
  --concurrency "$concurrency" >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/serve.out" || true)"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "verify.sh: the server did not start" >&2; exit 1; }

# One call first, to fail loudly on a setup mistake rather than measure errors.
curl -fsS -H "Authorization: Bearer $admin" -d "{\"secret\": \"$customer\"}" "$url/v1/verify" \
  | grep -q '"allowed":true'

echo "POST $url/v1/verify: wrk -t2 -c$connections -d${seconds}s, vault mode $concurrency"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/verify.lua" "$url/v1/verify"

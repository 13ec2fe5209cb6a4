#!/usr/bin/env bash
# The admin server's tests: builds `nanu`, runs `cargo test -p nanu-server`, then a
# property-based test of the live API with schemathesis (pinned, in a virtual environment under
# target/) that fails on any 5xx, then the dashboard's browser test when it is present.
# Installs what it needs: Debian packages only when missing, Python packages into the venv.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${NANU_FUZZ_EXAMPLES:-60}"

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

echo "== build"
cargo build -p nanu-cli --locked
nanu="$PWD/target/debug/nanu"

echo "== cargo test -p nanu-server"
cargo test -p nanu-server --locked

echo "== schemathesis $SCHEMATHESIS_VERSION against a live server"
venv="$PWD/target/server-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

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

vault="$work/fuzz.vault"
python3 -c 'import secrets; print(secrets.token_hex(32))' > "$work/vault.key"
n() { "$nanu" --vault "$vault" --key-file "$work/vault.key" "$@"; }
secret_of() { python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])'; }

n init >/dev/null
# The bootstrap admin key, checked after the run; the fuzzer gets a key holding every scope
# but `admin`, so that it cannot revoke, rotate or disable admin keys and lock itself out.
admin="$(n mint --owner ops --env admin --scope admin --json | secret_of)"
fuzz_scopes=()
for scope in keys:read keys:write owners:read owners:write prices:read prices:write usage:read \
  events:read audit:read webhooks:read verify charge; do
  fuzz_scopes+=(--scope "$scope")
done
fuzz="$(n mint --owner fuzz --env admin "${fuzz_scopes[@]}" --json | secret_of)"
# Some data for the fuzzer's reads to find.
customer="$(n mint --owner acme --limit 'requests=1000/min' --limit 'cost=$5/month' --json)"
n prices set gpt-4o --input 2.5 --output 10 >/dev/null
key_id="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["key_id"])' <<<"$customer")"
n charge "$key_id" --model gpt-4o --input-tokens 1200 --output-tokens 300 --request-id seed-1 >/dev/null

"$nanu" --vault "$vault" --key-file "$work/vault.key" serve --listen 127.0.0.1:0 \
  >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/serve.out" || true)"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "test-server.sh: the server did not start" >&2; exit 1; }
echo "server at $url (pid $server_pid)"

# Run from the temporary folder: schemathesis keeps a cache in the current directory.
(
  cd "$work"
  "$venv/bin/st" --no-color run "$url/openapi.json" \
    --checks not_a_server_error \
    --header "Authorization: Bearer $fuzz" \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout 30
)

# The server is still healthy, the bootstrap admin key still works, and so does the fuzzer's
# (had the fuzzer limited or revoked its own key, most of its calls would have tested nothing).
curl -fsS "$url/healthz" >/dev/null
curl -fsS -H "Authorization: Bearer $admin" "$url/v1/audit/verify" | grep -q '"ok":true'
curl -fsS -H "Authorization: Bearer $fuzz" "$url/v1/stats" >/dev/null

echo "== stop by pid"
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
if [ "$status" -ne 0 ]; then
  echo "test-server.sh: the server exited with $status on SIGTERM" >&2
  cat "$work/serve.err" >&2
  exit 1
fi
# Closed cleanly: the vault opens again and its audit chain is intact.
n audit --verify >/dev/null

if [ -x server/dashboard-test/run.sh ]; then
  echo "== dashboard browser test"
  server/dashboard-test/run.sh "$nanu"
fi

echo "test-server.sh: all server tests passed"

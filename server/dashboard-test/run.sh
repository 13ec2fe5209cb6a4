#!/usr/bin/env bash
# The dashboard's browser test: replays the bundled Azure trace into a fresh vault, serves it
# with `nanu serve` on a free loopback port, and drives the dashboard in Debian's headless
# Chromium (dashboard.test.mjs). Leaves a screenshot in target/dashboard/.
#
#   server/dashboard-test/run.sh target/debug/nanu
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PATH/TO/nanu" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
nanu="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
if [[ ! -x $nanu ]]; then
  echo "run.sh: $1 is not an executable file (build it with: cargo build -p nanu-cli)" >&2
  exit 2
fi
trace="$repo/cli/data/azure-llm-trace-2023-conv.csv"

chromium=/usr/bin/chromium
if [[ ! -x $chromium ]]; then
  echo "run.sh: installing Debian's chromium" >&2
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
fi
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

work="$(mktemp -d "${TMPDIR:-/tmp}/nanu-dashboard.XXXXXX")"
server=""
stop() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

# A vault unlocked by a raw key file, with the cheapest KDF: this vault lives for one test.
export NANU_KDF=insecure
openssl rand -hex 32 >"$work/vault.key"
vault=(--vault "$work/test.vault" --key-file "$work/vault.key")
"$nanu" "${vault[@]}" init >/dev/null
echo "run.sh: replaying $(basename "$trace")"
"$nanu" "${vault[@]}" replay "$trace" >"$work/replay.txt"

mint() {
  "$nanu" "${vault[@]}" mint --json "$@" 2>/dev/null
}
NANU_TEST_ADMIN="$(mint --owner ops --env admin --scope admin --name "dashboard test admin")"
NANU_TEST_READER="$(mint --owner ops --env admin --scope keys:read --name "dashboard test reader")"
NANU_TEST_REVOKE="$(mint --owner dashboard-test --name "revoked through the dashboard")"
NANU_TEST_ROTATE="$(mint --owner dashboard-test --name "rotated through the dashboard")"
export NANU_TEST_ADMIN NANU_TEST_READER NANU_TEST_REVOKE NANU_TEST_ROTATE

port="$(node -e '
  const server = require("net").createServer();
  server.listen(0, "127.0.0.1", () => { console.log(server.address().port); server.close(); });
')"
"$nanu" "${vault[@]}" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
export NANU_TEST_URL="http://127.0.0.1:$port"

ready=""
for _ in $(seq 1 200); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "run.sh: nanu serve exited before it answered; its output:" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  if curl -fsS "$NANU_TEST_URL/healthz" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  sleep 0.1
done
if [[ -z $ready ]]; then
  echo "run.sh: nanu serve did not answer /healthz within 20 s; its output:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi

mkdir -p "$repo/target/dashboard"
export NANU_TEST_SCREENSHOTS="$repo/target/dashboard"
export NANU_TEST_CHROMIUM="$chromium"
if ! node "$here/dashboard.test.mjs"; then
  echo "run.sh: the server's output:" >&2
  tail -n 40 "$work/serve.log" >&2
  exit 1
fi

#!/usr/bin/env bash
# The Node part of the test command: tests the npm package the way a user installs it.
#
#  1. `npm pack` in node/ (its prepack vendors the core and the binding into the tarball);
#  2. a fresh project outside the repository `npm install`s the tarball, which builds the addon
#     from the tarball's own Cargo workspace (nothing prebuilt, nothing from this workspace);
#  3. index.d.ts is regenerated from that build's type definitions and compared with the
#     committed one, and `tsc --strict` checks it and a typed usage file;
#  4. the node:test suite (node/test) and the gateway example's end-to-end test run against
#     the installed package, and the runner's summary must show tests passed and none failed.
#
# Installs what it needs: Node and npm from Debian when missing; typescript and @napi-rs/cli
# (pinned) from npm into target/node-tools. Cargo builds into target/node-package, kept
# between runs; the addon is built with cargo's dev profile unless NANU_NODE_PROFILE=release.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="$root/target/node-tools"
export CARGO_TARGET_DIR="$root/target/node-package"
export NANU_NODE_PROFILE="${NANU_NODE_PROFILE:-debug}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test-node: installing nodejs and npm"
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "test-node: node $major is too old (18 or later)" >&2
  exit 1
fi
command -v cargo >/dev/null || { echo "test-node: cargo is missing" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nanu-node-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "test-node: tools (typescript, @napi-rs/cli)"
mkdir -p "$tools"
[ -f "$tools/package.json" ] || echo '{"private": true}' >"$tools/package.json"
(cd "$tools" && npm install --no-audit --no-fund --loglevel=error \
  typescript@5.9.3 @napi-rs/cli@3.10.12 >/dev/null)

echo "test-node: npm pack"
(cd node && npm pack --pack-destination "$work" --loglevel=error >/dev/null)
tarball=$(ls "$work"/nanu-*.tgz)

echo "test-node: npm install $(basename "$tarball") in a fresh project" \
  "(profile $NANU_NODE_PROFILE)"
project="$work/project"
mkdir -p "$project" "$work/typedefs"
echo '{"name": "nanu-node-test", "private": true, "type": "module"}' >"$project/package.json"
(cd "$project" && NAPI_TYPE_DEF_TMP_FOLDER="$work/typedefs" \
  npm install --no-audit --no-fund --foreground-scripts --loglevel=error "$tarball")
installed="$project/node_modules/nanu"
[ -f "$installed/nanu.node" ] || { echo "test-node: the install built no addon" >&2; exit 1; }
if [ ! -f "$installed/vendor/nanu-node/Cargo.lock" ]; then
  echo "test-node: the tarball holds no vendored build" >&2
  exit 1
fi

echo "test-node: index.d.ts"
(cd "$tools" && node "$root/node/scripts/dts.mjs" "$work/typedefs" --check)
cmp "$root/node/index.d.ts" "$installed/index.d.ts"
cp -r node/test/types "$project/types"
"$tools/node_modules/.bin/tsc" -p "$project/types/tsconfig.json"
"$tools/node_modules/.bin/tsc" --noEmit --strict "$installed/index.d.ts"

echo "test-node: node:test suite and gateway example"
cp -r node/test "$project/test"
mkdir -p "$project/gateway"
cp -r examples/node-gateway/*.mjs examples/node-gateway/package.json examples/node-gateway/test \
  "$project/gateway/"
cd "$project"
shopt -s nullglob
suite=(test/*.test.mjs)
gateway=(gateway/test/*.test.mjs)
if [ ${#suite[@]} -eq 0 ] || [ ${#gateway[@]} -eq 0 ]; then
  echo "test-node: no test files matched (suite ${#suite[@]}, gateway ${#gateway[@]})" >&2
  exit 1
fi
set +e
NANU_REPO="$root" node --test --test-reporter=tap "${suite[@]}" "${gateway[@]}" \
  >"$work/tap.txt" 2>&1
status=$?
set -e
summary='^not ok|^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms)'
grep -E "$summary" "$work/tap.txt" || true
passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$work/tap.txt")
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$work/tap.txt")
if [ "$status" -ne 0 ] || [ "${failed:-1}" != 0 ] || [ "${passed:-0}" -eq 0 ]; then
  cat "$work/tap.txt" >&2
  echo "test-node: FAILED (status $status, pass ${passed:-none}, fail ${failed:-none})" >&2
  exit 1
fi
echo "test-node: all passed" \
  "(${#suite[@]} suite files, ${#gateway[@]} gateway file, $passed tests)"

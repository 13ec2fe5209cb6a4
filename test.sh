#!/usr/bin/env bash
# Runs every test of nanu: Rust (format, lints, docs, unit and integration tests, benchmark
# builds), the admin server (its tests, a property-based API test, the dashboard in headless
# Chromium), the C ABI with C and Go programs, the Python package and the Node package.
# Installs what it needs (Debian packages, Python virtual environments, npm packages).
# Usage: ./test.sh [part ...]   parts: rust server c python node (default: all)
set -euo pipefail
cd "$(dirname "$0")"

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(rust server c python node)

for part in "${parts[@]}"; do
  case "$part" in
    rust) scripts/test-rust.sh ;;
    server) scripts/test-server.sh ;;
    c) scripts/test-c.sh ;;
    python) scripts/test-python.sh ;;
    node) scripts/test-node.sh ;;
    *) echo "unknown part: $part (rust, server, c, python, node)" >&2; exit 2 ;;
  esac
done
echo "test.sh: all parts passed: ${parts[*]}"

#!/usr/bin/env bash
# The Rust part of ./test.sh: format, lints, docs, every unit and integration test, and the
# benchmarks compiled (not run).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# The server's tests run in its own part (scripts/test-server.sh).
cargo test --workspace --exclude nanu-server --locked
cargo bench --workspace --no-run --locked

#!/usr/bin/env bash
# The Rust part of ./test.sh: format, lints, docs, every unit and integration test, and the
# benchmarks compiled (not run).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo test --workspace --locked
cargo bench --workspace --no-run --locked
